/*
 * Tests `kprobe record` and `kprobe replay` end to end with real programs: the probe loads into
 * this kernel, servers listen on loopback (ephemeral ports), curl is the real curl, and every
 * replay runs with the server gone, so its answers can only come from the recording.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/integration/procs.h"
#include "tests/test.h"

static void copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

static void stop(pid_t p)
{
	kill(p, SIGKILL);
	waitpid(p, NULL, 0);
}

static void client_config(const char *path, int port)
{
	char cfg[128];
	snprintf(cfg, sizeof(cfg), "host=127.0.0.1\nport=%d\nrequest=GET balance\n", port);
	write_file(path, cfg);
}

/* The 750 ms client recorded while its server answers after 800 ms (the server recorded
 * beside it with --pid): replayed with the server gone, the same timeout; replayed with 1500 ms,
 * the answer the client never read in the recording arrives at 800 ms of virtual time. */
TEST_BPF(replay_client_timeout_and_fix)
{
	int port;
	char spid[16];
	const char *srv[] = {bin("tests/replay_server"), "800", "0", NULL};
	pid_t s = start_server(srv, &port);
	snprintf(spid, sizeof(spid), "%d", s);
	client_config(tmp("client.cfg"), port);
	struct run r;
	const char *rec[] = {bin("kprobe"),	"record",      "--pid", spid,
			     "--out",		tmp("c.kprc"), "--",	bin("tests/replay_client"),
			     tmp("client.cfg"), "750",	       NULL};
	run_cmd(&r, rec); /* --pid lingers 1 s: the server's late answer is recorded */
	stop(s);
	CHECK_EQ_INT(r.code, 1);
	CHECK_EQ_STR(r.out, "request failed: no answer within 750 ms\n");
	char recorded_out[256];
	copy(recorded_out, sizeof(recorded_out), r.out);

	/* the config file is gone too: its contents come from the recording */
	CHECK(unlink(tmp("client.cfg")) == 0);
	const char *rep[] = {
		bin("kprobe"),	   "replay", tmp("c.kprc"), "--", bin("tests/replay_client"),
		tmp("client.cfg"), "750",    NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 1, "exit %d, stderr: %.900s", r.code, r.err);
	CHECK_EQ_STR(r.out, recorded_out);
	CHECK_CONTAINS(r.err, "outcome: failed (timeout), as recorded");
	CHECK_CONTAINS(r.err, "stdout: identical to the recording");

	const char *fix[] = {
		bin("kprobe"),	   "replay", tmp("c.kprc"), "--", bin("tests/replay_client"),
		tmp("client.cfg"), "1500",   NULL};
	run_cmd(&r, fix);
	CHECKF(r.code == 0, "exit %d, stderr: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "answer: answer to 'GET balance': ");
	CHECK_CONTAINS(r.err, "outcome: failed (timeout) → succeeded");
	/* the answer came when the server sent it: ~800 ms after the request, virtual */
	const char *v = strstr(r.err, " ms virtual");
	CHECK(v != NULL);
	while (v > r.err && v[-1] != ' ')
		v--;
	double vms = atof(v);
	CHECKF(vms >= 800 && vms < 1000, "virtual time %.1f ms", vms);
}

TEST_BPF(replay_divergence_names_the_call)
{
	int port;
	char spid[16];
	const char *srv[] = {bin("tests/replay_server"), "50", "0", NULL};
	pid_t s = start_server(srv, &port);
	snprintf(spid, sizeof(spid), "%d", s);
	client_config(tmp("client.cfg"), port);
	struct run r;
	const char *rec[] = {bin("kprobe"),	"record", "--out",
			     tmp("d.kprc"),	"--",	  bin("tests/replay_client"),
			     tmp("client.cfg"), "750",	  NULL};
	run_cmd(&r, rec);
	stop(s);
	CHECKF(r.code == 0, "exit %d: %.300s %.600s", r.code, r.out, r.err);
	const char *rep[] = {
		bin("kprobe"),	   "replay", tmp("d.kprc"), "--", bin("tests/replay_client"),
		tmp("client.cfg"), "750",    "GET balanze", NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 86, "exit %d, stderr: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.err, "divergence in thread");
	CHECK_CONTAINS(r.err, "sendto(fd=3) writes different bytes");
	CHECK_CONTAINS(r.err, "expected: \"GET balance\\n\"");
	CHECK_CONTAINS(r.err, "actual:   \"GET balanze\\n\"");
	CHECK_CONTAINS(r.err, "first difference at byte 9");
	CHECK_EQ_STR(r.out, ""); /* stopped before it printed anything */
}

/* Where /proc/PID/mem cannot be opened, the tracee's memory goes through process_vm_readv and
 * process_vm_writev: served reads still land (same output), written bytes are still compared
 * (the divergence is still found and named), and the replay says what it could not do. */
TEST_BPF(replay_memory_without_proc_mem)
{
	setenv("KPROBE_REPLAY_NO_PROCMEM", "1", 1);
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("m.kprc"), "--",     bin("tests/replay_loop"),
			     "read",	    "300",    NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	char recorded[256];
	copy(recorded, sizeof(recorded), r.out);
	const char *rep[] = {bin("kprobe"), "replay", tmp("m.kprc"), NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_EQ_STR(r.out, recorded);
	CHECK_CONTAINS(r.err, "its memory goes through process_vm_readv/writev");
	CHECK_CONTAINS(r.err, "stdout: identical to the recording");

	int port;
	const char *srv[] = {bin("tests/replay_server"), "50", "0", NULL};
	pid_t s = start_server(srv, &port);
	client_config(tmp("client.cfg"), port);
	const char *rec2[] = {bin("kprobe"),	 "record", "--out",
			      tmp("d.kprc"),	 "--",	   bin("tests/replay_client"),
			      tmp("client.cfg"), "750",	   NULL};
	run_cmd(&r, rec2);
	stop(s);
	CHECKF(r.code == 0, "exit %d: %.300s %.600s", r.code, r.out, r.err);
	const char *div[] = {
		bin("kprobe"),	   "replay", tmp("d.kprc"), "--", bin("tests/replay_client"),
		tmp("client.cfg"), "750",    "GET balanze", NULL};
	run_cmd(&r, div);
	CHECKF(r.code == 86, "exit %d, stderr: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.err, "actual:   \"GET balanze\\n\"");
	CHECK_CONTAINS(r.err, "first difference at byte 9");
}

TEST_BPF(replay_curl_without_server)
{
	if (access("/usr/bin/curl", X_OK) != 0)
		SKIP("curl is not installed (scripts/deps.sh installs it)");
	int port;
	const char *srv[] = {bin("tests/replay_http"), "0", NULL};
	pid_t s = start_server(srv, &port);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out", tmp("curl.kprc"), "--", "curl",
			     "-s",	    url,      NULL};
	run_cmd(&r, rec);
	stop(s);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "path=/x token=");
	char recorded[4096];
	copy(recorded, sizeof(recorded), r.out);
	/* the server is gone: a real curl fails now */
	const char *live[] = {"curl", "-s", url, NULL};
	run_cmd(&r, live);
	CHECK_NE_INT(r.code, 0);
	const char *rep[] = {bin("kprobe"), "replay", tmp("curl.kprc"), NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 0, "exit %d, stderr: %.900s", r.code, r.err);
	CHECK_EQ_STR(r.out, recorded);
	CHECK_CONTAINS(r.err, "stdout: identical to the recording");
}

TEST_BPF(replay_fail_fsync_takes_error_path)
{
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("f.kprc"), "--",     bin("tests/replay_fsync"),
			     tmp("ledger"), NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "saved 43 bytes");
	const char *rep[] = {bin("kprobe"), "replay", tmp("f.kprc"), NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "saved 43 bytes");
	CHECK(access(tmp("ledger"), F_OK) == 0);
	const char *fail[] = {bin("kprobe"), "replay", tmp("f.kprc"), "--fail", "fsync:EIO", NULL};
	run_cmd(&r, fail);
	CHECKF(r.code == 3, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.err, "fsync failed: Input/output error");
	CHECK_CONTAINS(r.err, "succeeded → failed (EIO from fsync)");
	CHECK_EQ_STR(r.out, "");
	CHECK(access(tmp("ledger"), F_OK) != 0); /* its error path removed the file, for real */
}

/* The dynamic loader's calls depend on this machine's libraries: a replay makes them for real.
 * Here the loader is sent probing directories the recording never saw, and the program still
 * replays on script (and its environment is otherwise the recorded one without --keep-env). */
TEST_BPF(replay_loader_calls_are_the_machines)
{
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("l.kprc"), "--",     bin("tests/replay_fsync"),
			     tmp("ledger"), NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK(mkdir(tmp("empty"), 0755) == 0);
	CHECK(setenv("LD_LIBRARY_PATH", tmp("empty"), 1) == 0);
	const char *rep[] = {bin("kprobe"), "replay", "--keep-env", tmp("l.kprc"), NULL};
	run_cmd(&r, rep);
	unsetenv("LD_LIBRARY_PATH");
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "saved 43 bytes");
	CHECKF(!strstr(r.err, "leaves the script"), "%.900s", r.err);
	CHECK_CONTAINS(r.err, " 0 from the model");
}

/* Recorded against a fast server; injected delays make it time out. */
TEST_BPF(replay_delay_and_time_scale_cause_timeout)
{
	int port;
	const char *srv[] = {bin("tests/replay_server"), "50", "0", NULL};
	pid_t s = start_server(srv, &port);
	client_config(tmp("client.cfg"), port);
	struct run r;
	const char *rec[] = {bin("kprobe"),	"record", "--out",
			     tmp("fast.kprc"),	"--",	  bin("tests/replay_client"),
			     tmp("client.cfg"), "750",	  NULL};
	run_cmd(&r, rec);
	stop(s);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	const char *rep[] = {bin("kprobe"), "replay", tmp("fast.kprc"), NULL};
	run_cmd(&r, rep);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	const char *dl[] = {bin("kprobe"), "replay", tmp("fast.kprc"), "--delay", "poll:+1s", NULL};
	run_cmd(&r, dl);
	CHECKF(r.code == 1, "exit %d: %.900s", r.code, r.err);
	CHECK_EQ_STR(r.out, "request failed: no answer within 750 ms\n");
	CHECK_CONTAINS(r.err, "succeeded → failed (timeout)");
	/* a small delay does not change the outcome */
	const char *dl2[] = {
		bin("kprobe"), "replay", tmp("fast.kprc"), "--delay", "poll:fd=3:nth=1:+100ms",
		NULL};
	run_cmd(&r, dl2);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.err, "poll delayed by 100 ms");
	const char *ts[] = {bin("kprobe"), "replay", tmp("fast.kprc"), "--time-scale", "20", NULL};
	run_cmd(&r, ts);
	CHECKF(r.code == 1, "exit %d: %.900s", r.code, r.err);
	const char *fz[] = {bin("kprobe"), "replay",  tmp("fast.kprc"), "--fuzz",
			    "6",	   "--delay", "poll:+5s",	NULL};
	run_cmd(&r, fz);
	CHECKF(r.code == 1, "exit %d: %.900s", r.code,
	       r.err); /* some variant changed the outcome */
	CHECK_CONTAINS(r.err, "variant 6 (seed 6)");
	CHECK_CONTAINS(r.err, "[CHANGED");
	CHECK_CONTAINS(r.err, "variants changed the outcome");
}

TEST_BPF(replay_threads_same_output)
{
	char data[1024] = "";
	for (int i = 0; i < 40; i++)
		snprintf(data + strlen(data), sizeof(data) - strlen(data), "%03d-", i);
	write_file(tmp("slices"), data);
	struct run r;
	const char *prog[] = {bin("tests/replay_threads"), tmp("slices"), "6", NULL};
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("t.kprc"), "--",     bin("tests/replay_threads"),
			     tmp("slices"), "6",      NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	char recorded[4096];
	copy(recorded, sizeof(recorded), r.out);
	CHECK_CONTAINS(recorded, "thread 5: random");
	/* natively, every run differs (random bytes, clocks): a replay has only the recording */
	run_cmd(&r, prog);
	CHECK(strcmp(r.out, recorded) != 0);
	const char *rep[] = {bin("kprobe"), "replay", tmp("t.kprc"), NULL};
	for (int i = 0; i < 3; i++) {
		run_cmd(&r, rep);
		CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
		CHECKF(!strcmp(r.out, recorded), "run %d:\n%.300s\nrecorded:\n%.300s\n%.300s", i,
		       r.out, recorded, r.err);
	}
}

/* fork, a pipe between the two, a signal, the child's exit status: all as recorded */
TEST_BPF(replay_processes_pipes_signals)
{
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("p.kprc"), "--",     bin("tests/replay_procs"),
			     NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	CHECK_CONTAINS(r.out, "exited 7, signals seen 1");
	char recorded[512];
	copy(recorded, sizeof(recorded), r.out);
	const char *rep[] = {bin("kprobe"), "replay", tmp("p.kprc"), NULL};
	for (int i = 0; i < 2; i++) {
		run_cmd(&r, rep);
		CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
		CHECK_EQ_STR(r.out, recorded);
	}
}

TEST_BPF(replay_refuses_damaged_recordings)
{
	struct run r;
	const char *rec[] = {bin("kprobe"), "record", "--out",
			     tmp("x.kprc"), "--",     bin("tests/replay_loop"),
			     "read",	    "20",     NULL};
	run_cmd(&r, rec);
	CHECKF(r.code == 0, "exit %d: %.900s", r.code, r.err);
	/* flip one byte in the middle of the streams */
	int fd = open(tmp("x.kprc"), O_RDWR);
	struct stat st;
	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	char c;
	off_t at = st.st_size - 200;
	CHECK(pread(fd, &c, 1, at) == 1);
	c ^= 0x5a;
	CHECK(pwrite(fd, &c, 1, at) == 1);
	close(fd);
	const char *rep[] = {bin("kprobe"), "replay", tmp("x.kprc"), NULL};
	run_cmd(&r, rep);
	CHECK_EQ_INT(r.code, 85);
	CHECK_CONTAINS(r.err, "checksum mismatch");
	/* cut it short */
	CHECK(truncate(tmp("x.kprc"), st.st_size / 2) == 0);
	run_cmd(&r, rep);
	CHECK_EQ_INT(r.code, 85);
	CHECK_CONTAINS(r.err, "the file was cut");
}

TEST(replay_remote_sources_usage)
{
	struct run r;
	/* nobody listens on port 1: the fetch fails, saying where it looked */
	const char *a[] = {bin("kprobe"),	 "replay", "--incident", "req-9f21", "--appliance",
			   "http://127.0.0.1:1", NULL};
	run_cmd(&r, a);
	CHECK_EQ_INT(r.code, 85);
	CHECK_CONTAINS(r.err, "cannot reach kprobed at 127.0.0.1:1");
	/* --pid needs --from and --to; a FILE and a remote source do not mix */
	const char *b[] = {bin("kprobe"), "replay", "--pid", "42", "--from", "15m", NULL};
	run_cmd(&r, b);
	CHECK_EQ_INT(r.code, 2);
	CHECK_CONTAINS(r.err, "--pid P --from T --to T");
	const char *b2[] = {bin("kprobe"), "replay", "x.kprc", "--incident", "k", NULL};
	run_cmd(&r, b2);
	CHECK_EQ_INT(r.code, 2);
	CHECK_CONTAINS(r.err, "not both");
	const char *c[] = {bin("kprobe"), "replay", "--help", NULL};
	run_cmd(&r, c);
	CHECK_EQ_INT(r.code, 0);
	CHECK_CONTAINS(r.out, "--delay CALL[:fd=N][:nth=K]:+DURATION");
	const char *d[] = {bin("kprobe"), "record", "--help", NULL};
	run_cmd(&r, d);
	CHECK_EQ_INT(r.code, 0);
	CHECK_CONTAINS(r.out, "--out FILE");
	const char *e[] = {bin("kprobe"), "replay", "x.kprc", "--delay", "poll:+soon", NULL};
	run_cmd(&r, e);
	CHECK_EQ_INT(r.code, 2);
	CHECK_CONTAINS(r.err, "+DURATION");
}
