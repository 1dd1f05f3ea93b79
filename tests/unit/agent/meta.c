/*
 * Tests agent/meta.c: container / Kubernetes recognition on real-world cgroup path shapes
 * (cgroup v1 and v2, systemd and cgroupfs drivers, docker, containerd, cri-o, podman), the pick
 * between v1 and v2 paths, /proc reading of a live process, PROC events, service rules, the
 * bounded tables and the "fresh" logic.
 */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/meta.h"
#include "common/util.h"
#include "tests/test.h"

#define ID64  "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define ID64B "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
#define UID_  "0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"
#define UIDD  "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

struct shape {
	const char *path, *container, *pod, *qos;
};

static const struct shape shapes[] = {
	/* Kubernetes, systemd cgroup driver (v1 and v2 look the same) */
	{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" UID_
	 ".slice/cri-containerd-" ID64 ".scope",
	 ID64, UID_, "burstable"},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
	 ".slice/crio-" ID64 ".scope",
	 ID64, UID_, "besteffort"},
	{"/kubepods.slice/kubepods-pod" UID_ ".slice/docker-" ID64 ".scope", ID64, UID_,
	 "guaranteed"},
	{"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" UID_
	 ".slice/crio-conmon-" ID64 ".scope",
	 "", UID_, "besteffort"},
	{"/kubepods.slice/kubepods-burstable.slice", "", "", ""},
	/* Kubernetes, cgroupfs driver */
	{"/kubepods/burstable/pod" UIDD "/" ID64, ID64, UIDD, "burstable"},
	{"/kubepods/besteffort/pod" UIDD "/" ID64, ID64, UIDD, "besteffort"},
	{"/kubepods/pod" UIDD "/" ID64, ID64, UIDD, "guaranteed"},
	{"/kubepods/pod" UIDD, "", UIDD, "guaranteed"},
	/* containerd's systemd-style path on a cgroupfs v1 host */
	{"/system.slice/containerd.service/kubepods-burstable-pod" UID_
	 ".slice:cri-containerd:" ID64,
	 ID64, UID_, "burstable"},
	/* kind / nested: the node container, then the pod's container (innermost wins) */
	{"/docker/" ID64B "/kubepods/burstable/pod" UIDD "/" ID64, ID64, UIDD, "burstable"},
	/* plain containers */
	{"/system.slice/docker-" ID64 ".scope", ID64, "", ""},
	{"/docker/" ID64, ID64, "", ""},
	{"/machine.slice/libpod-" ID64 ".scope/container", ID64, "", ""},
	{"/machine.slice/libpod-conmon-" ID64 ".scope", "", "", ""},
	{"/user.slice/user-1000.slice/user@1000.service/app.slice/podman-12.scope", "", "", ""},
	{"/actions_job/" ID64, ID64, "", ""},
	{"/system.slice/crio-" ID64 ".scope", ID64, "", ""},
	{"/system.slice/cri-containerd-" ID64 ".scope", ID64, "", ""},
	/* not containers */
	{"/", "", "", ""},
	{"", "", "", ""},
	{"/user.slice/user-1000.slice/session-3.scope", "", "", ""},
	{"/system.slice/sshd.service", "", "", ""},
	{"/process_api/2a19b2e32b5e0ad337dd2014b6970945", "", "", ""},
	{"/docker/" ID64 "x", "", "", ""}, /* 65 chars */
	{"/docker/0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef", "", "",
	 ""}, /* upper case is not an id docker writes */
	{"/system.slice/docker-" ID64 ".scope/../x", ID64, "", ""},
	{"/kubepodsx/pod" UIDD, "", "", ""},
};

TEST(meta_cgroup_parse_shapes)
{
	for (size_t i = 0; i < KP_ARRAY_SIZE(shapes); i++) {
		struct meta_cgroup cg;
		meta_cgroup_parse(shapes[i].path, &cg);
		CHECKF(!strcmp(cg.container, shapes[i].container), "%s: container '%s' want '%s'",
		       shapes[i].path, cg.container, shapes[i].container);
		CHECKF(!strcmp(cg.pod, shapes[i].pod), "%s: pod '%s' want '%s'", shapes[i].path,
		       cg.pod, shapes[i].pod);
		CHECKF(!strcmp(cg.qos, shapes[i].qos), "%s: qos '%s' want '%s'", shapes[i].path,
		       cg.qos, shapes[i].qos);
		CHECK_EQ_STR(cg.ns, "");
	}
	struct meta_cgroup cg;
	meta_cgroup_parse(NULL, &cg);
	CHECK_EQ_STR(cg.container, "");
}

TEST(meta_cgroup_pick_v1_v2)
{
	char p[256];
	/* hybrid (this machine's shape): v1 memory wins over the v2 root */
	CHECK_EQ_INT(meta_cgroup_pick("9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n"
				      "1:cpu:/\n0::/\n",
				      p, sizeof(p)),
		     2);
	CHECK_EQ_STR(p, "/process_api/abc");
	/* pure v2 */
	CHECK_EQ_INT(meta_cgroup_pick("0::/system.slice/docker-" ID64 ".scope\n", p, sizeof(p)), 1);
	CHECK_EQ_STR(p, "/system.slice/docker-" ID64 ".scope");
	/* pure v1, memory co-mounted with others, no trailing newline */
	CHECK_EQ_INT(
		meta_cgroup_pick("11:cpu,cpuacct:/a\n3:blkio,memory:/docker/" ID64, p, sizeof(p)),
		2);
	CHECK_EQ_STR(p, "/docker/" ID64);
	/* "memoryx" is not memory */
	CHECK_EQ_INT(meta_cgroup_pick("3:memoryx:/a\n0::/b\n", p, sizeof(p)), 1);
	CHECK_EQ_STR(p, "/b");
	/* nothing usable */
	CHECK_EQ_INT(meta_cgroup_pick("", p, sizeof(p)), 0);
	CHECK_EQ_STR(p, "");
	CHECK_EQ_INT(meta_cgroup_pick("garbage\n::\n1:\n", p, sizeof(p)), 0);
	/* a path longer than the buffer is cut, not overflowed */
	char big[1200] = "0::/";
	memset(big + 4, 'a', 1000);
	big[1004] = 0;
	CHECK_EQ_INT(meta_cgroup_pick(big, p, sizeof(p)), 1);
	CHECK_EQ_INT(strlen(p), sizeof(p) - 1);
}

static struct meta *open_meta(const char *const *sets)
{
	struct kp_config cfg;
	char err[256];
	config_init(&cfg);
	for (int i = 0; sets && sets[i]; i++)
		CHECKF(config_set(&cfg, sets[i], err, sizeof(err)) == 0, "%s", err);
	struct meta *m;
	CHECKF(meta_open(&m, &cfg, err, sizeof(err)) == 0, "%s", err);
	config_free(&cfg);
	return m;
}

TEST(meta_proc_self)
{
	const char *sets[] = {"agent.serviceRules=comm:nomatch*=x, comm:kprobe-t*=tests", NULL};
	struct meta *m = open_meta(sets);
	uint64_t now = now_real_ns();
	int fresh;
	const struct wire_proc *p = meta_proc(m, (uint32_t)getpid(), now, &fresh);
	CHECK(p);
	CHECK_EQ_INT(fresh, 1);
	CHECK_EQ_INT(p->pid, getpid());
	CHECK_EQ_INT(p->ppid, getppid());
	CHECK_EQ_STR(p->comm, "kprobe-test");
	CHECK_CONTAINS(p->cmdline, "kprobe-test");
	CHECK_EQ_STR(p->service, "tests");
	CHECK(p->start_ns < now && p->start_ns > now - 86400ull * 365 * NSEC_PER_SEC);
	/* the cgroup path and id agree with what /proc and the file system say */
	char text[4096] = "", path[256];
	FILE *f = fopen("/proc/self/cgroup", "r");
	CHECK(f);
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	int kind = meta_cgroup_pick(text, path, sizeof(path));
	CHECK_EQ_STR(p->cgroup, path);
	char dir[512];
	snprintf(dir, sizeof(dir), "%s%s",
		 kind == 2 ? "/sys/fs/cgroup/memory"
			   : (access("/sys/fs/cgroup/unified", F_OK) ? "/sys/fs/cgroup"
								     : "/sys/fs/cgroup/unified"),
		 path);
	struct stat st;
	if (stat(dir, &st) == 0)
		CHECK_EQ_UINT(p->cgroup_id, st.st_ino);
	/* fresh only on first sight, then again after agent.metaResendSec */
	p = meta_proc(m, (uint32_t)getpid(), now + 1, &fresh);
	CHECK_EQ_INT(fresh, 0);
	/* events from other CPUs arrive slightly out of order: no resend for those */
	p = meta_proc(m, (uint32_t)getpid(), now - 1000, &fresh);
	CHECK_EQ_INT(fresh, 0);
	p = meta_proc(m, (uint32_t)getpid(), now + 61 * NSEC_PER_SEC, &fresh);
	CHECK_EQ_INT(fresh, 1);
	struct meta_stats st2;
	meta_stats(m, &st2);
	CHECK_EQ_INT(st2.procs, 1);
	CHECK_EQ_INT(st2.proc_reads, 1);
	meta_close(m);
}

static struct kp_event proc_ev(uint32_t pid, int what, uint64_t arg1, const char *comm,
			       uint8_t flags)
{
	struct kp_event e = {.pid = pid, .tid = pid, .type = KP_PROC, .flags = flags};
	e.arg[0] = (uint64_t)what;
	e.arg[1] = arg1;
	char c[16] = {0};
	strncpy(c, comm, 15);
	memcpy(&e.arg[2], c, 16);
	return e;
}

/* A pid no process has here (pid_max is at most 4194304). */
static uint32_t ghost_pid(uint32_t from)
{
	char p[64];
	for (uint32_t pid = from;; pid++) {
		snprintf(p, sizeof(p), "/proc/%u", pid);
		if (access(p, F_OK))
			return pid;
	}
}

TEST(meta_short_lived_keeps_event_comm)
{
	struct meta *m = open_meta(NULL);
	uint64_t now = now_real_ns();
	uint32_t me = (uint32_t)getpid(), g = ghost_pid(4190000);
	int fresh;
	/* unknown and gone: nothing to say */
	CHECK(!meta_proc(m, g, now, &fresh));
	/* we fork it: it inherits our cgroup and has the event's comm */
	const struct wire_proc *self = meta_proc(m, me, now, &fresh);
	CHECK(self);
	char cg[256];
	snprintf(cg, sizeof(cg), "%s", self->cgroup);
	struct kp_event e = proc_ev(me, KP_PROC_FORK, g, "kprobe-test", 0);
	meta_proc_event(m, &e, now);
	const struct wire_proc *p = meta_proc(m, g, now, &fresh);
	CHECK(p);
	CHECK_EQ_INT(fresh, 1);
	CHECK_EQ_STR(p->comm, "kprobe-test");
	CHECK_EQ_INT(p->ppid, me);
	CHECK_EQ_STR(p->cgroup, cg);
	/* it execs and is gone before we look: the exec's comm stays, service follows it */
	e = proc_ev(g, KP_PROC_EXEC, me, "short-job", 0);
	meta_proc_event(m, &e, now + 1);
	p = meta_proc(m, g, now + 2, &fresh);
	CHECK(p);
	CHECK_EQ_INT(fresh, 1);
	CHECK_EQ_STR(p->comm, "short-job");
	CHECK_EQ_STR(p->service, "short-job");
	/* a thread's exit changes nothing; the process's exit starts the grace period */
	e = proc_ev(g, KP_PROC_EXIT, me, "short-job", KP_F_THREAD);
	meta_proc_event(m, &e, now + 3);
	meta_expire(m, now + META_GRACE_NS * 2);
	CHECK(meta_proc(m, g, now + 4, &fresh));
	e = proc_ev(g, KP_PROC_EXIT, me, "short-job", 0);
	meta_proc_event(m, &e, now + 5);
	meta_expire(m, now + 6);
	CHECK(meta_proc(m, g, now + 7, &fresh)); /* late events still find it */
	meta_expire(m, now + 5 + META_GRACE_NS + 1);
	CHECK(!meta_proc(m, g, now + 8, &fresh));
	meta_close(m);
}

TEST(meta_tables_are_bounded)
{
	struct meta *m = open_meta(NULL);
	uint64_t now = now_real_ns();
	uint32_t base = 3000000;
	int fresh;
	for (uint32_t i = 0; i < META_MAX_PROCS + 1000; i++) {
		struct kp_event e = proc_ev(1, KP_PROC_FORK, base + i, "w", 0);
		meta_proc_event(m, &e, now);
	}
	struct meta_stats st;
	meta_stats(m, &st);
	CHECK_EQ_INT(st.procs, META_MAX_PROCS);
	CHECK_GE_INT(st.proc_evicted, 1000);
	/* the newest are there, the oldest were evicted */
	const struct wire_proc *p = meta_proc(m, base + META_MAX_PROCS + 999, now, &fresh);
	CHECK(p);
	CHECK_EQ_STR(p->comm, "w");
	/* connections: mirrored reports of one connection are one entry, not a change */
	struct kp_conn_record r = {0};
	r.ev.type = KP_CONN;
	r.ev.arg[0] = 0x1234;
	r.ev.arg[1] = 2;
	r.ev.arg[2] = 1;
	r.ev.arg[3] = KP_PORTS(40000, 80) | (uint64_t)2 << 32;
	r.saddr[0] = 10;
	r.daddr[0] = 11;
	const struct wire_conn *c = meta_conn_update(m, &r, now, &fresh);
	CHECK_EQ_INT(fresh, 1);
	CHECK_EQ_INT(c->sport, 40000);
	CHECK_EQ_INT(c->dport, 80);
	CHECK_EQ_INT(c->family, 2);
	struct kp_conn_record mirror = r;
	mirror.ev.arg[3] = KP_PORTS(80, 40000) | (uint64_t)2 << 32;
	mirror.saddr[0] = 11;
	mirror.daddr[0] = 10;
	c = meta_conn_update(m, &mirror, now + 1, &fresh);
	CHECK_EQ_INT(fresh, 0);
	CHECK_EQ_INT(c->sport, 40000);
	CHECK(meta_conn(m, 0x1234, now + 2, &fresh));
	CHECK_EQ_INT(fresh, 0);
	CHECK(!meta_conn(m, 0x9999, now, &fresh));
	/* closed, then dropped after the grace period */
	r.ev.arg[2] = 7;
	meta_conn_update(m, &r, now + 3, &fresh);
	meta_expire(m, now + 4);
	CHECK(meta_conn(m, 0x1234, now + 5, &fresh));
	meta_expire(m, now + 3 + META_GRACE_NS + 1);
	CHECK(!meta_conn(m, 0x1234, now + 6, &fresh));
	for (uint64_t i = 0; i < META_MAX_CONNS + 10; i++) {
		r.ev.arg[0] = 0x100000 + i;
		r.ev.arg[2] = 1;
		meta_conn_update(m, &r, now, &fresh);
	}
	meta_stats(m, &st);
	CHECK_EQ_INT(st.conns, META_MAX_CONNS);
	CHECK_EQ_INT(st.conn_evicted, 10);
	CHECK(!meta_conn(m, 0x100000, now, &fresh));
	CHECK(meta_conn(m, 0x100000 + META_MAX_CONNS + 9, now, &fresh));
	meta_close(m);
}

TEST(meta_bad_service_rule)
{
	struct kp_config cfg;
	char err[256];
	config_init(&cfg);
	CHECK_EQ_INT(config_set(&cfg, "agent.serviceRules=nginx=web", err, sizeof(err)), 0);
	struct meta *m = NULL;
	CHECK_EQ_INT(meta_open(&m, &cfg, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "nginx=web");
	config_free(&cfg);
}
