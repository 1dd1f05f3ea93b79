/*
 * demo_env.c - the demo incident's environment: a scratch directory, settlement's memory cgroup
 * (cgroup v1 memory controller, or cgroup v2 memory.max), and a small "batch volume": an ext4
 * file system on a loop device whose writes are throttled, so batch-job's dirty pages are slow to
 * write back and fill the memory cgroup — the way a batch job on a slow disk starves a service of
 * memory in production. Teardown undoes all of it, whatever state setup reached.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/demo.h"
#include "common/util.h"

#define DEMO_MEMCG_LIMIT  (64u << 20) /* settlement's memory limit */
#define DEMO_VOLUME_BYTES (256u << 20)
#define DEMO_VOLUME_BPS   (4u << 20) /* the batch volume writes back at 4 MiB/s */

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int r = write_full(fd, s, strlen(s));
	close(fd);
	return r;
}

static int setup_memcg(struct demo_env *e)
{
	char p[PATH_MAX + 64], lim[32];
	snprintf(lim, sizeof(lim), "%u", DEMO_MEMCG_LIMIT);
	if (access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) == 0) {
		snprintf(e->memcg, sizeof(e->memcg), "/sys/fs/cgroup/memory/kprobe-demo-%d",
			 getpid());
		if (mkdir(e->memcg, 0755) < 0 && errno != EEXIST)
			return -errno;
		snprintf(p, sizeof(p), "%s/memory.limit_in_bytes", e->memcg);
		return write_str(p, lim);
	}
	/* cgroup v2: the unified hierarchy, wherever it is mounted, with memory enabled. */
	const char *roots[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
	for (size_t i = 0; i < 2; i++) {
		char ctl[128];
		snprintf(ctl, sizeof(ctl), "%s/cgroup.subtree_control", roots[i]);
		FILE *f = fopen(ctl, "r");
		if (!f)
			continue;
		char line[256] = "";
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
		if (!strstr(line, "memory"))
			continue;
		snprintf(e->memcg, sizeof(e->memcg), "%s/kprobe-demo-%d", roots[i], getpid());
		if (mkdir(e->memcg, 0755) < 0 && errno != EEXIST)
			return -errno;
		e->memcg_v2 = 1;
		snprintf(p, sizeof(p), "%s/memory.max", e->memcg);
		return write_str(p, lim);
	}
	e->memcg[0] = '\0';
	return -ENOTSUP;
}

int demo_env_join_memcg(const struct demo_env *e, pid_t pid)
{
	char p[PATH_MAX + 32], s[32];
	snprintf(p, sizeof(p), "%s/cgroup.procs", e->memcg);
	snprintf(s, sizeof(s), "%d", pid);
	return write_str(p, s);
}

/* Attaches img to a free loop device; returns its fd and fills e->loopdev. */
static int loop_attach(struct demo_env *e, const char *img)
{
	int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return -errno;
	int nr = ioctl(ctl, LOOP_CTL_GET_FREE);
	close(ctl);
	if (nr < 0)
		return -errno;
	snprintf(e->loopdev, sizeof(e->loopdev), "/dev/loop%d", nr);
	int dev = open(e->loopdev, O_RDWR | O_CLOEXEC);
	int file = open(img, O_RDWR | O_CLOEXEC);
	if (dev < 0 || file < 0) {
		int err = -errno;
		if (dev >= 0)
			close(dev);
		if (file >= 0)
			close(file);
		e->loopdev[0] = '\0';
		return err;
	}
	int r = ioctl(dev, LOOP_SET_FD, file);
	close(file);
	if (r < 0) {
		r = -errno;
		close(dev);
		e->loopdev[0] = '\0';
		return r;
	}
	struct loop_info64 li;
	memset(&li, 0, sizeof(li));
	li.lo_flags = LO_FLAGS_AUTOCLEAR;
	snprintf((char *)li.lo_file_name, sizeof(li.lo_file_name), "kprobe-demo");
	ioctl(dev, LOOP_SET_STATUS64, &li);
	struct stat st;
	fstat(dev, &st);
	snprintf(e->majmin, sizeof(e->majmin), "%u:%u", major(st.st_rdev), minor(st.st_rdev));
	return dev;
}

static int run_quiet(char *const argv[])
{
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		int nul = open("/dev/null", O_WRONLY);
		dup2(nul, 1);
		dup2(nul, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	waitpid(p, &st, 0);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int setup_volume(struct demo_env *e)
{
	char img[300];
	snprintf(img, sizeof(img), "%s/batch-volume.img", e->dir);
	int fd = open(img, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = ftruncate(fd, DEMO_VOLUME_BYTES) < 0 ? -errno : 0;
	close(fd);
	if (r < 0)
		return r;
	int dev = loop_attach(e, img);
	if (dev < 0)
		return dev;
	char *mkfs[] = {"mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1",
			e->loopdev, NULL};
	r = run_quiet(mkfs);
	if (r == 0) {
		snprintf(e->mnt, sizeof(e->mnt), "%s/batch-volume", e->dir);
		mkdir(e->mnt, 0755);
		if (mount(e->loopdev, e->mnt, "ext4", 0, NULL) < 0) {
			r = -errno;
			e->mnt[0] = '\0';
		}
	}
	/* With LO_FLAGS_AUTOCLEAR the device detaches itself when the last user goes: once
	 * mounted, the mount holds it; if anything failed, closing here frees it. */
	close(dev);
	if (r < 0)
		return r;
	/* Throttle the volume's writes. cgroup v1: a rule in the root blkio group covers the
	 * flusher threads that write dirty pages back. cgroup v2 attributes writeback to the
	 * dirtier's cgroup: io.max on the demo's group. */
	char rule[96];
	snprintf(rule, sizeof(rule), "%s %u", e->majmin, DEMO_VOLUME_BPS);
	if (!e->memcg_v2 &&
	    access("/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device", W_OK) == 0) {
		snprintf(e->throttle_file, sizeof(e->throttle_file),
			 "/sys/fs/cgroup/blkio/blkio.throttle.write_bps_device");
		return write_str(e->throttle_file, rule);
	}
	if (e->memcg_v2) {
		snprintf(e->throttle_file, sizeof(e->throttle_file), "%s/io.max", e->memcg);
		snprintf(rule, sizeof(rule), "%s wbps=%u", e->majmin, DEMO_VOLUME_BPS);
		return write_str(e->throttle_file, rule);
	}
	return -ENOTSUP;
}

int demo_env_setup(struct demo_env *e, char *err, size_t errlen)
{
	memset(e, 0, sizeof(*e));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	e->cpu = ncpu > 1 ? (int)ncpu - 1 : 0;
	snprintf(e->dir, sizeof(e->dir), "/tmp/kprobe-demo.XXXXXX");
	if (!mkdtemp(e->dir)) {
		snprintf(err, errlen, "cannot create a scratch directory in /tmp: %s",
			 strerror(errno));
		e->dir[0] = '\0';
		return -errno;
	}
	if (geteuid() != 0) {
		snprintf(e->why_no_memory, sizeof(e->why_no_memory),
			 "not root: no memory cgroup or throttled volume");
		return 0;
	}
	int r = setup_memcg(e);
	if (r < 0) {
		snprintf(e->why_no_memory, sizeof(e->why_no_memory),
			 "no writable memory cgroup (v1 memory controller or v2 memory.max): %s",
			 strerror(-r));
		return 0;
	}
	r = setup_volume(e);
	if (r < 0) {
		snprintf(e->why_no_memory, sizeof(e->why_no_memory),
			 "cannot set up the throttled batch volume (loop device, mkfs.ext4, "
			 "mount, blkio throttle): %s",
			 strerror(-r));
		if (e->mnt[0]) {
			umount2(e->mnt, MNT_DETACH);
			e->mnt[0] = '\0';
		}
	}
	return 0;
}

static void rm_tree(const char *dir)
{
	char *argv[] = {"rm", "-rf", (char *)dir, NULL};
	run_quiet(argv);
}

void demo_env_unthrottle(const struct demo_env *e)
{
	if (!e->throttle_file[0] || !e->majmin[0])
		return;
	char rule[96];
	if (e->memcg_v2)
		snprintf(rule, sizeof(rule), "%s wbps=max", e->majmin);
	else
		snprintf(rule, sizeof(rule), "%s 0", e->majmin);
	write_str(e->throttle_file, rule);
}

void demo_env_teardown(struct demo_env *e)
{
	demo_env_unthrottle(e);
	if (e->mnt[0]) {
		if (umount2(e->mnt, 0) < 0)
			umount2(e->mnt, MNT_DETACH);
	}
	if (e->memcg[0]) {
		/* The group can only go once its processes have; wait for stragglers briefly. */
		for (int i = 0; i < 100 && rmdir(e->memcg) < 0 && errno == EBUSY; i++)
			usleep(20000);
	}
	if (e->dir[0])
		rm_tree(e->dir);
	memset(e, 0, sizeof(*e));
}
