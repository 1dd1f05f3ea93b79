/*
 * Tests replay/capture.c, the probe the agent will load for replay.capture.*: a process selected
 * by command name has its reads captured with their bytes, cut (and flagged) at maxBytes, and
 * nothing of unselected processes comes through. Also checks the raw_tp fallback loads.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/types.h>

#include "common/config.h"
#include "replay/capture.h"
#include "replay/rec.h"
#include "tests/integration/procs.h"
#include "tests/test.h"

struct seen {
	pid_t pid;
	int reads, reads_trunc, opens_urandom, other_pids, execs;
	uint32_t max_payload;
};

static int on_rec(void *ctx, const void *rec, size_t len)
{
	struct seen *s = ctx;
	const struct kp_cap_rec *c = rec;
	CHECK(kp_cap_rec_valid(rec, len));
	if ((pid_t)c->pid != s->pid) {
		s->other_pids++;
		return 0;
	}
	if (c->kind == KP_CAP_EXEC)
		s->execs++;
	if (c->kind != KP_CAP_CALL)
		return 0;
	if (c->nr == SYS_read && c->ret == 64) {
		s->reads++;
		if (c->flags & KP_CAP_F_TRUNC)
			s->reads_trunc++;
		if (c->payload_len > s->max_payload)
			s->max_payload = c->payload_len;
	}
	if (c->nr == SYS_openat && c->payload_len &&
	    !strcmp((const char *)kp_cap_payload(c), "/dev/urandom"))
		s->opens_urandom++;
	return 0;
}

static void capture_comm_run(bool raw)
{
	char name[16], path[512], src[512];
	snprintf(name, sizeof(name), "kpcap%d", getpid() % 100000);
	snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), name);
	snprintf(src, sizeof(src), "%s/bin/tests/replay_loop", kt_root());
	/* a copy of the workload under a name no other process has */
	copy_exe(src, path);

	struct kp_config cfg;
	char err[512];
	config_init(&cfg);
	CHECK_EQ_INT(config_set(&cfg, "replay.capture.maxBytes=16", err, sizeof(err)), 0);
	struct capture *c = NULL;
	int ret;
	if (raw) {
		const char *comms[] = {name};
		struct capture_opts o = {
			.max_bytes = 16, .comms = comms, .ncomms = 1, .force_raw_tp = true};
		ret = capture_open(&c, &o, err, sizeof(err));
	} else {
		/* off by default */
		CHECK_EQ_INT(capture_open_config(&c, &cfg, err, sizeof(err)), -ENOENT);
		CHECK_CONTAINS(err, "off");
		char set[64];
		snprintf(set, sizeof(set), "replay.capture.comms=%s", name);
		CHECK_EQ_INT(config_set(&cfg, set, err, sizeof(err)), 0);
		ret = capture_open_config(&c, &cfg, err, sizeof(err));
	}
	CHECKF(ret == 0, "%s", err);
	pid_t p = fork();
	if (p == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		execl(path, name, "read", "7", (char *)NULL);
		_exit(127);
	}
	struct seen s = {.pid = p};
	int st;
	CHECK(waitpid(p, &st, 0) == p);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (int i = 0; i < 5; i++)
		CHECK(capture_poll(c, 50, on_rec, &s) >= 0);
	struct capture_stats cs;
	capture_stats(c, &cs);
	capture_close(c);
	config_free(&cfg);
	CHECK_EQ_INT(cs.raw_tp, raw);
	CHECK_EQ_INT(s.reads, 7);
	CHECK_EQ_INT(s.reads_trunc, 7); /* 64 bytes read, 16 kept */
	CHECK_EQ_INT(s.max_payload, 16);
	CHECK_EQ_INT(s.opens_urandom, 1);
	CHECK_EQ_INT(s.other_pids, 0);
	CHECK_EQ_UINT(cs.dropped, 0);
	CHECK_GE_UINT(cs.truncated, 7);
}

TEST_BPF(capture_selects_by_comm_and_cuts_payloads)
{
	capture_comm_run(false);
}

TEST_BPF(capture_raw_tp_fallback)
{
	capture_comm_run(true);
}
