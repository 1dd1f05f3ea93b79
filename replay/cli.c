/*
 * cli.c - `kprobe record` (run a command under the capture probe, write a recording) and
 * `kprobe replay` (replay a recording under ptrace, with injections, fuzzing and outcome
 * comparison). Flag parsing, progress lines and reports live here; the work is in capture.c,
 * rec.c and engine.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/ship.h"
#include "cli/cli.h"
#include "common/config.h"
#include "common/json.h"
#include "common/util.h"
#include "httpd/client.h"
#include "replay/capture.h"
#include "bpf/capture.h"
#include "replay/cli.h"
#include "replay/internal.h"
#include "replay/rec.h"
#include "replay/replay.h"
#include "replay/sysc.h"

static int exit_code_of(int status)
{
	if (status < 0)
		return REPLAY_EXIT_ERROR;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return REPLAY_EXIT_ERROR;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* ================================================================== the appliance */

/*
 * Where kprobed's API is: --appliance URL ("http://host:port", "host:port", "port"), else
 * `kprobe up`'s ./kprobe-data/kprobed.ports, else api.bind:api.port from the configuration.
 */
static int appliance_addr(const char *url, char *host, size_t hostcap, int *port)
{
	char tmp[512];
	const char *u = url;
	if (u && !strncmp(u, "http://", 7))
		u += 7;
	if (u) {
		snprintf(tmp, sizeof(tmp), "%s", u);
		size_t n = strlen(tmp);
		while (n && tmp[n - 1] == '/')
			tmp[--n] = 0;
		u = tmp;
	}
	return cli_resolve_api(u, NULL, host, hostcap, port);
}

static const char *auth_header(const char *token, char *buf, size_t cap)
{
	if (!token)
		token = getenv("KPROBE_TOKEN");
	if (!token || !*token)
		return NULL;
	snprintf(buf, cap, "Authorization: Bearer %s", token);
	return buf;
}

/* The "error" of a JSON error answer, or the body. */
static void answer_error(const struct httpc_resp *r, char *out, size_t cap)
{
	struct json *root;
	char jerr[64];
	size_t pos;
	struct json_doc *d = json_parse(r->body.data ? r->body.data : "", r->body.len, &root, jerr,
					sizeof(jerr), &pos);
	const struct json *m = d ? json_get(root, "error") : NULL;
	snprintf(out, cap, "%s",
		 m && m->type == JSON_STR ? m->u.str.s
		 : r->body.data		  ? r->body.data
					  : "");
	json_free(d);
}

static void url_put(struct kp_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_' || c == '.' || c == '~')
			buf_append(b, s, 1);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* ================================================================== record */

static void record_usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe record --out FILE [--pid PID]... [options] -- CMD [ARGS...]\n"
		"\n"
		"Runs CMD with replay capture on for it and everything it starts, and writes a\n"
		"self-contained recording to FILE for `kprobe replay`: every system call the "
		"replay\n"
		"serves or compares (number, arguments, result, timestamps) with the bytes that\n"
		"input-side calls returned and output-side calls wrote, up to --max-bytes\n"
		"per call (longer payloads are flagged truncated; --max-bytes). Loads a BPF "
		"program:\n"
		"needs root.\n"
		"CMD runs under ptrace, stopped only at each exec to redirect its vDSO clock "
		"functions\n"
		"to real system calls, so clock reads are recorded with their exact values "
		"(programs\n"
		"that trace themselves, or setuid ones, do not run as usual under it).\n"
		"\n"
		"  --out FILE        where the recording goes (written atomically)\n"
		"  --pid PID         also record this running process and its future children, as "
		"the\n"
		"                    world's other side: a local server CMD talks to. A replay of "
		"CMD\n"
		"                    then knows what that peer sent and when, even bytes CMD never "
		"read\n"
		"                    (repeatable)\n"
		"  --max-bytes N     payload bytes kept per call (default and maximum 65536; the\n"
		"                    agent's capture uses replay.capture.maxBytes, 4096 by "
		"default)\n"
		"  --linger DURATION keep recording the --pid peers this long after CMD exits, so "
		"an\n"
		"                    answer they send after CMD gave up is in the recording "
		"(default\n"
		"                    1s with --pid, else 0)\n"
		"  --appliance URL   also ship the recording to kprobed (http://host:port of its\n"
		"                    API): its records join the appliance's capture store, so\n"
		"                    `kprobe replay --pid P --from T --to T` and FROM syscalls\n"
		"                    find them there as for processes the agent captured\n"
		"                    (replay.capture.*). Without an agent capturing CMD, this is\n"
		"                    how a recording reaches the appliance. KPROBE_TOKEN or\n"
		"                    --token T: the API's bearer token\n"
		"  --token T         bearer token for --appliance (api.auth.enabled)\n"
		"  --config FILE, --set KEY=VALUE   configuration (probe.ebpf.ringBufferSizeKb: "
		"the\n"
		"                    ring buffer is at least 64 MiB for a recording)\n"
		"  -q, --quiet       no progress lines\n"
		"\n"
		"Exit status: CMD's (128+N when killed by signal N); 85 when the recording could "
		"not\n"
		"be made or is incomplete (records were lost); 2 on usage errors.\n"
		"\n"
		"Example:\n"
		"  kprobe record --out /tmp/curl.kprc -- curl -s http://127.0.0.1:8080/x\n"
		"  kprobe replay /tmp/curl.kprc          # same output, no server needed\n");
}

struct rec_ctx {
	struct rec_writer *w;
	uint64_t n, bytes;
};

static int on_cap(void *ctx, const void *rec, size_t len)
{
	struct rec_ctx *rc = ctx;
	if (rec_writer_add(rc->w, rec, len) == 0) {
		rc->n++;
		rc->bytes += len;
	}
	return 0;
}

/*
 * The recorder traces the command tree only to stop each process at exec: there its vDSO clock
 * functions are redirected to real system calls (as a replay does), so every clock read the
 * program makes is a system call the probe records, with its exact value. Without this, clock
 * reads through the vDSO would be invisible to BPF and a replay could only approximate them from
 * the neighbouring calls' timestamps (which it still does for processes captured by the agent).
 * Nothing else stops: fork/clone events are continued at once, signals pass through.
 */
struct rtrace {
	struct rec_writer *w;
	pid_t root;
	int status;
	bool first;
	pid_t seen[1024]; /* tasks whose first stop was seen */
	int nseen;
	char vdso_err[256];
};

static bool rtrace_seen(struct rtrace *t, pid_t p, bool add)
{
	for (int i = 0; i < t->nseen; i++)
		if (t->seen[i] == p)
			return true;
	if (add) {
		if (t->nseen == 1024)
			t->nseen = 0; /* old entries belong to tasks long gone */
		t->seen[t->nseen++] = p;
	}
	return false;
}

static void rtrace_patch(struct rtrace *t, pid_t pid)
{
	char path[64], err[256];
	/* where this process's dynamic loader lives: its calls are the machine's, not the
	 * program's, and a replay elsewhere makes them for real */
	uint64_t lo, hi;
	if (replay__loader_range(pid, &lo, &hi) == 0) {
		struct kp_cap_rec r = {.len = KP_CAP_HDR_LEN,
				       .kind = KP_CAP_LOADER,
				       .pid = (uint32_t)pid,
				       .tid = (uint32_t)pid,
				       .ts_exit = now_mono_ns(),
				       .args = {lo, hi}};
		r.ts_enter = r.ts_exit;
		rec_writer_add(t->w, &r, sizeof(r));
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 || replay__vdso_patch(pid, fd, err, sizeof(err)) < 0)
		snprintf(t->vdso_err, sizeof(t->vdso_err), "%s", fd < 0 ? strerror(errno) : err);
	if (fd >= 0)
		close(fd);
}

static void rtrace_reap(struct rtrace *t)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG | __WALL);
		if (pid <= 0)
			return;
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (pid == t->root)
				t->status = st;
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), ev = st >> 16;
		if (pid == t->root && t->first && sig == SIGTRAP) {
			/* the first exec (PTRACE_TRACEME) */
			t->first = false;
			rtrace_seen(t, pid, true);
			ptrace(PTRACE_SETOPTIONS, pid, 0,
			       PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
				       PTRACE_O_TRACEEXEC);
			rtrace_patch(t, pid);
			ptrace(PTRACE_CONT, pid, 0, 0);
			continue;
		}
		switch (ev) {
		case PTRACE_EVENT_EXEC:
			rtrace_patch(t, pid);
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		case PTRACE_EVENT_CLONE:
		case PTRACE_EVENT_FORK:
		case PTRACE_EVENT_VFORK:
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		case 0:
			/* a new task's first stop is the SIGSTOP of its auto-attach */
			if (!rtrace_seen(t, pid, true) && sig == SIGSTOP)
				ptrace(PTRACE_CONT, pid, 0, 0);
			else
				ptrace(PTRACE_CONT, pid, 0, sig);
			break;
		default:
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		}
	}
}

/* Uploads the recording file to kprobed (POST /api/v1/replay/recordings), as this node. */
static int ship_recording(const char *file, const char *host, int port, const char *token,
			  bool quiet)
{
	struct kp_buf body = {0};
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "kprobe record: cannot read back %s: %s\n", file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	buf_reserve(&body, (size_t)st.st_size + 1);
	if (read_full(fd, body.data, (size_t)st.st_size) < 0) {
		fprintf(stderr, "kprobe record: cannot read back %s: %s\n", file, strerror(errno));
		close(fd);
		buf_free(&body);
		return -1;
	}
	body.len = (size_t)st.st_size;
	close(fd);
	struct kp_config cfg;
	config_init(&cfg);
	char err[512];
	const char *defcfg = config_default_path();
	if (defcfg)
		config_load_file(&cfg, defcfg, err, sizeof(err));
	struct utsname un;
	uname(&un);
	/* the node id the agent on this host ships under, so both sources line up */
	uint64_t node = ship_node_id(
		cfg.agent_node_name && *cfg.agent_node_name ? cfg.agent_node_name : un.nodename);
	config_free(&cfg);
	char path[128], auth[600];
	snprintf(path, sizeof(path), "/api/v1/replay/recordings?node=%" PRIu64, node);
	const char *headers[3] = {"Content-Type: application/octet-stream",
				  auth_header(token, auth, sizeof(auth)), NULL};
	struct httpc_req req = {.method = "POST",
				.path = path,
				.headers = headers,
				.body = body.data,
				.body_len = body.len,
				.timeout_ms = 120000};
	struct httpc_resp resp = {0};
	int r = httpc_request(host, port, &req, &resp, err, sizeof(err));
	buf_free(&body);
	if (r < 0) {
		fprintf(stderr,
			"kprobe record: the recording is in %s, but kprobed at %s:%d cannot "
			"be reached: %s\n",
			file, host, port, err);
		return -1;
	}
	if (resp.status != 200) {
		char m[1024];
		answer_error(&resp, m, sizeof(m));
		fprintf(stderr,
			"kprobe record: the recording is in %s, but kprobed refused it "
			"(HTTP %d): %s\n",
			file, resp.status, m);
		httpc_resp_free(&resp);
		return -1;
	}
	if (!quiet)
		fprintf(stderr, "kprobe record: shipped to kprobed at %s:%d: %s\n", host, port,
			resp.body.data);
	httpc_resp_free(&resp);
	return 0;
}

int replay_cmd_record(int argc, char **argv)
{
	struct kp_config cfg;
	char err[1024];
	const char *out = NULL, *appliance = NULL, *token = NULL;
	uint64_t linger = UINT64_MAX;
	long max_bytes = KP_CAP_MAX_PAYLOAD;
	pid_t peers[64];
	int npeers = 0, cmd_at = -1;
	bool quiet = false;
	config_init(&cfg);
	const char *defcfg = config_default_path();
	if (defcfg && config_load_file(&cfg, defcfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe record: %s\n", err);
		return 2;
	}
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			cmd_at = i + 1;
			argc = i; /* config_from_args must not see CMD's own flags */
			break;
		}
	char **cmd = cmd_at > 0 ? argv + cmd_at : NULL;
	if (config_from_args(&cfg, &argc, argv, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe record: %s\n", err);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			record_usage(stdout);
			return 0;
		} else if (!strcmp(a, "--out") && i + 1 < argc) {
			out = argv[++i];
		} else if (!strcmp(a, "--pid") && i + 1 < argc) {
			char *end;
			long p = strtol(argv[++i], &end, 10);
			if (*end || p <= 0 || npeers == 64) {
				fprintf(stderr,
					"kprobe record: --pid '%s': not a pid (or too many)\n",
					argv[i]);
				return 2;
			}
			if (kill((pid_t)p, 0) < 0) {
				fprintf(stderr, "kprobe record: --pid %ld: %s\n", p,
					strerror(errno));
				return 2;
			}
			peers[npeers++] = (pid_t)p;
		} else if (!strcmp(a, "--appliance") && i + 1 < argc) {
			appliance = argv[++i];
		} else if (!strcmp(a, "--token") && i + 1 < argc) {
			token = argv[++i];
		} else if (!strcmp(a, "--max-bytes") && i + 1 < argc) {
			char *end;
			max_bytes = strtol(argv[++i], &end, 10);
			if (*end || max_bytes < 0 || max_bytes > KP_CAP_MAX_PAYLOAD) {
				fprintf(stderr, "kprobe record: --max-bytes '%s': 0..%d\n", argv[i],
					KP_CAP_MAX_PAYLOAD);
				return 2;
			}
		} else if (!strcmp(a, "--linger") && i + 1 < argc) {
			if (parse_duration_ns(argv[++i], &linger) < 0) {
				fprintf(stderr,
					"kprobe record: --linger '%s': a duration (500ms, 2s)\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			quiet = true;
		} else {
			fprintf(stderr,
				"kprobe record: unknown or incomplete option '%s' (see kprobe "
				"record --help)\n",
				a);
			return 2;
		}
	}
	if (!out || !cmd || !cmd[0]) {
		fprintf(stderr, "kprobe record: need --out FILE and -- CMD (see kprobe record "
				"--help)\n");
		return 2;
	}
	char ahost[256];
	int aport = 0;
	if (appliance && appliance_addr(appliance, ahost, sizeof(ahost), &aport) < 0) {
		fprintf(stderr, "kprobe record: --appliance '%s': expected http://HOST:PORT\n",
			appliance);
		return 2;
	}

	if (linger == UINT64_MAX)
		linger = npeers ? NSEC_PER_SEC : 0;
	struct capture *cap = NULL;
	struct capture_opts co = {
		.max_bytes = (uint32_t)max_bytes,
		.ringbuf_bytes = KP_MAX((size_t)cfg.probe_ringbuf_kb << 10, (size_t)64 << 20),
	};
	int ret = capture_open(&cap, &co, err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "kprobe record: %s\n", err);
		config_free(&cfg);
		return REPLAY_EXIT_ERROR;
	}
	for (int i = 0; i < npeers; i++)
		capture_add_pid(cap, peers[i], false, true);

	struct rec_meta m = {0};
	char cwd[4096] = "", host[256] = "";
	struct utsname un;
	uname(&un);
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = 0;
	gethostname(host, sizeof(host) - 1);
	m.argc = 0;
	while (cmd[m.argc] && m.argc < REC_MAX_ARGS)
		m.argc++;
	m.argv = cmd;
	m.cwd = cwd;
	m.host = host;
	m.kernel = un.release;
	extern char **environ;
	while (environ[m.envc] && m.envc < REC_MAX_ENV)
		m.envc++;
	m.envp = environ;
	m.max_bytes = co.max_bytes;
	m.root_status = -1;
	for (int fd = 0; fd < 3; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0) {
			m.std[fd].dev = st.st_dev;
			m.std[fd].ino = st.st_ino;
		}
	}
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			break; /* CMD gets 0, 1 and 2 open; none of our descriptors lands there */
	int go[2];
	if (pipe2(go, O_CLOEXEC) < 0) {
		fprintf(stderr, "kprobe record: pipe: %s\n", strerror(errno));
		capture_close(cap);
		return REPLAY_EXIT_ERROR;
	}
	m.mono_base = clock_ns(CLOCK_MONOTONIC);
	m.real_base = clock_ns(CLOCK_REALTIME);
	m.boot_base = clock_ns(CLOCK_BOOTTIME);
	sigset_t chld, oldmask;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &oldmask);
	int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
	pid_t child = fork();
	if (child == 0) {
		char c;
		signal(SIGINT, SIG_DFL);
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
		if (read(go[0], &c, 1) != 1)
			_exit(REPLAY_EXIT_ERROR);
		syscall(SYS_close_range, 3, ~0u, 0);
		/* traced only to stop at exec: see struct rtrace */
		if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
			_exit(REPLAY_EXIT_ERROR);
		execvp(cmd[0], cmd);
		fprintf(stderr, "kprobe record: cannot run %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	close(go[0]);
	m.root_tid = (uint32_t)child;
	struct rec_ctx rc = {.w = rec_writer_new()};
	rec_writer_meta(rc.w, &m);
	signal(SIGINT, SIG_IGN); /* Ctrl-C reaches CMD; we write what was recorded */
	capture_add_pid(cap, child, true, true);
	if (write(go[1], "g", 1) != 1) {
		kill(child, SIGKILL);
	}
	close(go[1]);

	struct rtrace rt = {.w = rc.w, .root = child, .status = -1, .first = true};
	int status = -1, quiet_polls = 0;
	uint64_t last_progress = now_mono_ns(), ended = 0;
	struct pollfd pf[2] = {{capture_fd(cap), POLLIN, 0}, {sfd, POLLIN, 0}};
	rtrace_reap(&rt);
	for (;;) {
		int n = poll(pf, 2, 100);
		if (n < 0 && errno != EINTR)
			break;
		n = capture_consume(cap, on_cap, &rc);
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) > 0)
				;
		}
		rtrace_reap(&rt);
		if (status < 0) {
			status = rt.status;
			if (status >= 0)
				ended = now_mono_ns();
		} else {
			/* the command is done: drain what is still in flight, and give the peers
			 * their linger time */
			quiet_polls = n > 0 ? 0 : quiet_polls + 1;
			if (quiet_polls >= 3 && now_mono_ns() - ended >= linger)
				break;
		}
		if (!quiet && now_mono_ns() - last_progress > 2 * NSEC_PER_SEC) {
			fprintf(stderr,
				"kprobe record: %" PRIu64 " records, %" PRIu64 " KiB so far\n",
				rc.n, rc.bytes >> 10);
			last_progress = now_mono_ns();
		}
	}
	close(sfd);
	sigprocmask(SIG_SETMASK, &oldmask, NULL);
	if (rt.vdso_err[0] && !quiet)
		fprintf(stderr,
			"kprobe record: %s (clock reads through the vDSO are not recorded; "
			"the replay reconstructs them)\n",
			rt.vdso_err);
	signal(SIGINT, SIG_DFL);
	struct capture_stats cs;
	capture_stats(cap, &cs);
	capture_close(cap);
	m.mono_end = clock_ns(CLOCK_MONOTONIC);
	m.root_status = status;
	m.dropped = cs.dropped;
	m.truncated = cs.truncated;
	rec_writer_meta(rc.w, &m);
	struct rec_summary sum;
	ret = rec_writer_finish(rc.w, out, &sum, err, sizeof(err));
	rec_writer_free(rc.w);
	config_free(&cfg);
	if (ret < 0) {
		fprintf(stderr, "kprobe record: %s\n", err);
		return REPLAY_EXIT_ERROR;
	}
	if (!quiet)
		fprintf(stderr,
			"kprobe record: %" PRIu64 " calls in %u threads (%u processes, %u "
			"peers), %" PRIu64 " KiB of payload, %" PRIu64 " truncated -> %s (%" PRIu64
			" KiB)%s\n",
			sum.calls, sum.threads, sum.processes, sum.peers, sum.payload_bytes >> 10,
			sum.truncated, out, sum.file_bytes >> 10, cs.raw_tp ? " [raw_tp]" : "");
	if (cs.dropped) {
		fprintf(stderr,
			"kprobe record: %" PRIu64 " records were lost in the kernel (ring "
			"buffer full): %s is marked incomplete and will not replay; raise "
			"probe.ebpf.ringBufferSizeKb\n",
			cs.dropped, out);
		return REPLAY_EXIT_ERROR;
	}
	if (appliance && ship_recording(out, ahost, aport, token, quiet) < 0)
		return REPLAY_EXIT_ERROR;
	return exit_code_of(status);
}

/* ================================================================== replay */

static void replay_usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe replay (FILE | --incident KEY | --pid P --from T --to T)\n"
		"                     [--appliance URL] [injections] [-- CMD [ARGS...]]\n"
		"\n"
		"Runs CMD (default: the recorded command line) under ptrace with a seccomp filter "
		"that\n"
		"stops only on the calls the replay must serve. Input-side calls (reads, recv, "
		"accept,\n"
		"connect, poll/select/epoll results, clock reads including the vDSO ones, "
		"getrandom,\n"
		"stat, ...) are answered from the recording and the real call is suppressed; "
		"output\n"
		"calls are compared with the recording. Everything else runs natively. Threads "
		"replay\n"
		"from their own recorded streams, in the recorded order; signals pass through.\n"
		"\n"
		"The first output that differs from the recording while the program has seen "
		"exactly\n"
		"its recorded inputs is a divergence: the replay stops and reports the thread, "
		"the\n"
		"call, its arguments, expected and actual bytes. When an input differs instead "
		"(another\n"
		"timeout, another file, an injected failure), that thread leaves the script and "
		"is\n"
		"answered by a model of the recorded world: the bytes each recorded connection "
		"carried\n"
		"and when (including what a peer recorded beside it sent), in virtual time. That "
		"is how\n"
		"a fix is verified against the recorded incident: the outcome change is reported, "
		"e.g.\n"
		"\"failed (timeout) -> succeeded\".\n"
		"\n"
		"Source:\n"
		"  FILE                 a recording written by `kprobe record`\n"
		"  --pid P --from T --to T [--node N]\n"
		"                       fetch from kprobed a recording of process P (and what it\n"
		"                       forked, and the captured peers it talked to) between T "
		"and\n"
		"                       T: epoch ns, a duration ago (15m), or RFC 3339 UTC\n"
		"                       (2026-05-01T10:00:00Z). Needs the process captured\n"
		"                       (replay.capture.* on its node's agent, or kprobe record\n"
		"                       --appliance); N: the node id when several captured P\n"
		"  --incident KEY       the same for the process of a transaction (trace, span or\n"
		"                       transaction id), from its exec to its exit\n"
		"  --appliance URL      kprobed's API (http://host:port; default: kprobe up's\n"
		"                       ./kprobe-data, else api.bind:api.port); KPROBE_TOKEN or\n"
		"                       --token T when api.auth.enabled\n"
		"  --save FILE          also keep the fetched recording in FILE\n"
		"Injections:\n"
		"  --delay CALL[:fd=N][:nth=K]:+DURATION   that call completes DURATION later "
		"(virtual\n"
		"                       time); a wait it pushes past its timeout times out. E.g.\n"
		"                       --delay poll:+1s, --delay recvfrom:fd=3:nth=2:+250ms\n"
		"  --fail CALL[:nth=K]:ERRNO               that call fails with ERRNO: --fail "
		"fsync:EIO\n"
		"  --time-scale F       recorded time runs F times as long (2: everything the "
		"world\n"
		"                       does takes twice as long)\n"
		"  --fuzz N             replay N times with delays drawn from [0, DURATION] for "
		"every\n"
		"                       --delay (default --delay poll:+500ms and friends) and "
		"report\n"
		"                       which variants change the outcome (exit status or stdout)\n"
		"  --seed S             first fuzz seed (default 1)\n"
		"Output:\n"
		"  -v, --verbose        notes as they happen (-v -v: a line per served call)\n"
		"  -q, --quiet          no summary lines\n"
		"  --list               print what the recording holds (threads, calls) and exit\n"
		"  --json               print the result as one JSON object on stdout (the shape "
		"of\n"
		"                       kprobed's POST /api/v1/replay); CMD's stdout goes in it\n"
		"  --keep-env           run CMD with this environment and working directory "
		"instead\n"
		"                       of the recorded ones (they are inputs too: $PWD, $HOME, "
		"...)\n"
		"\n"
		"Exit status: CMD's (128+N when killed by signal N); 86 when a divergence stopped "
		"the\n"
		"replay; 85 when the replay could not run or continue (bad recording, data the\n"
		"recording does not have); 2 on usage errors. With --fuzz: 0 when no variant "
		"changed\n"
		"the outcome, 1 when some did.\n");
}

/* --list: what a recording holds, one line per thread and per call. */
static void list_recording(const struct rec *r, FILE *out)
{
	const struct rec_meta *m = rec_meta(r);
	char st[160];
	replay_outcome_str(m->root_status, "", st, sizeof(st));
	fprintf(out, "recording of:");
	for (int i = 0; i < m->argc; i++)
		fprintf(out, " %s", m->argv[i]);
	fprintf(out, "\n  on %s (kernel %s), in %s; %s; %" PRIu64 " calls; maxBytes %u; %.1f ms\n",
		m->host, m->kernel, m->cwd, st, rec_ncalls(r), m->max_bytes,
		(double)(m->mono_end - m->mono_base) / 1e6);
	for (int i = 0; i < rec_nthreads(r); i++) {
		const struct rec_thread *t = rec_thread(r, i);
		fprintf(out, "thread %u (process %u%s%s%s) %s: %u calls, parent %u child #%u\n",
			t->tid, t->tgid, t->flags & REC_T_ROOT ? ", root" : "",
			t->flags & REC_T_PEER ? ", peer" : "",
			t->flags & REC_T_THREAD ? ", thread" : "", t->exe, t->n_calls,
			t->parent_tid, t->child_index);
	}
	for (uint64_t n = 0; n < rec_ncalls(r); n++) {
		int th;
		const struct kp_cap_rec *c = rec_call_seq(r, n, &th);
		struct kp_cap_sock k;
		fprintf(out, "%6" PRIu64 " %7u %+10.3f ms %-14s (%lld, %lld, %lld) = %lld",
			(uint64_t)c->seq, c->tid, ((double)c->ts_exit - (double)m->mono_base) / 1e6,
			sysc_name(c->nr), (long long)c->args[0], (long long)c->args[1],
			(long long)c->args[2], (long long)c->ret);
		if (c->payload_len) {
			fprintf(out, " \"");
			for (uint32_t i = 0; i < c->payload_len && i < 48; i++) {
				uint8_t b = kp_cap_payload(c)[i];
				fprintf(out, b >= 32 && b < 127 && b != '"' ? "%c" : "\\x%02x", b);
			}
			fprintf(out, "\"%s", c->payload_len > 48 ? "..." : "");
		}
		if (c->flags & KP_CAP_F_TRUNC)
			fprintf(out, " [truncated]");
		if (kp_cap_sock_get(c, &k) && k.family == 2)
			fprintf(out, " [%u.%u.%u.%u:%u -> %u.%u.%u.%u:%u]", k.saddr[0], k.saddr[1],
				k.saddr[2], k.saddr[3], k.sport, k.daddr[0], k.daddr[1], k.daddr[2],
				k.daddr[3], k.dport);
		fprintf(out, "\n");
	}
}

static void out_compare(const struct kp_buf *rec, bool rec_cut, const struct kp_buf *got,
			bool got_cut, char *buf, size_t len)
{
	if (rec_cut || got_cut) {
		snprintf(buf, len, "not comparable (more output than was captured)");
		return;
	}
	size_t n = KP_MIN(rec->len, got->len), i = 0;
	while (i < n && rec->data[i] == got->data[i])
		i++;
	if (i == n && rec->len == got->len)
		snprintf(buf, len, "identical to the recording (%zu bytes)", rec->len);
	else
		snprintf(buf, len,
			 "differs from the recording at byte %zu (%zu bytes recorded, "
			 "%zu now)",
			 i, rec->len, got->len);
}

static bool out_same(const struct kp_buf *a, const struct kp_buf *b)
{
	return a->len == b->len && (!a->len || !memcmp(a->data, b->data, a->len));
}

/* Fetches a recording from kprobed. 0 with *out, or the exit status to return. */
static int fetch_recording(const char *appliance, const char *token, const char *incident,
			   const char *pid, const char *from, const char *to, const char *node,
			   const char *save, bool quiet, struct rec **out)
{
	char host[256], err[1024], auth[600];
	int port;
	if (appliance_addr(appliance, host, sizeof(host), &port) < 0) {
		fprintf(stderr, "kprobe replay: --appliance '%s': expected http://HOST:PORT\n",
			appliance);
		return 2;
	}
	struct kp_buf path = {0};
	buf_puts(&path, "/api/v1/replay/recording?");
	if (incident) {
		buf_puts(&path, "incident=");
		url_put(&path, incident);
	} else {
		buf_puts(&path, "pid=");
		url_put(&path, pid);
		buf_puts(&path, "&from=");
		url_put(&path, from);
		buf_puts(&path, "&to=");
		url_put(&path, to);
	}
	if (node) {
		buf_puts(&path, "&node=");
		url_put(&path, node);
	}
	const char *headers[2] = {auth_header(token, auth, sizeof(auth)), NULL};
	struct httpc_req req = {.path = path.data,
				.headers = headers,
				.max_body = (size_t)4 << 30,
				.timeout_ms = 120000};
	struct httpc_resp resp = {0};
	if (!quiet)
		fprintf(stderr,
			"kprobe replay: fetching the recording of %s%s from kprobed at "
			"%s:%d\n",
			incident ? "incident " : "pid ", incident ? incident : pid, host, port);
	int rc = httpc_request(host, port, &req, &resp, err, sizeof(err));
	buf_free(&path);
	if (rc < 0) {
		fprintf(stderr,
			"kprobe replay: cannot reach kprobed at %s:%d: %s (is it running? "
			"`kprobe up`, or --appliance http://HOST:PORT)\n",
			host, port, err);
		return REPLAY_EXIT_ERROR;
	}
	if (resp.status != 200) {
		char m[1024];
		answer_error(&resp, m, sizeof(m));
		fprintf(stderr, "kprobe replay: kprobed has no recording for that (HTTP %d): %s\n",
			resp.status, m);
		httpc_resp_free(&resp);
		return resp.status == 400 ? 2 : REPLAY_EXIT_ERROR;
	}
	char hb[1024];
	if (!quiet && httpc_resp_header(&resp, "x-kprobe-recording", hb, sizeof(hb)))
		fprintf(stderr, "kprobe replay: recording: %s (%zu KiB)\n", hb,
			resp.body.len >> 10);
	if (httpc_resp_header(&resp, "x-kprobe-note", hb, sizeof(hb)))
		fprintf(stderr, "kprobe replay: note: %s\n", hb);
	if (save) {
		int fd = open(save, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0 || write_full(fd, resp.body.data, resp.body.len) < 0)
			fprintf(stderr, "kprobe replay: cannot save the recording to %s: %s\n",
				save, strerror(errno));
		else if (!quiet)
			fprintf(stderr, "kprobe replay: saved to %s\n", save);
		if (fd >= 0)
			close(fd);
	}
	rc = rec_open_mem(out, resp.body.data, resp.body.len, err, sizeof(err));
	httpc_resp_free(&resp);
	if (rc < 0) {
		fprintf(stderr, "kprobe replay: the recording kprobed sent does not read: %s\n",
			err);
		return REPLAY_EXIT_ERROR;
	}
	return 0;
}

int replay_cmd_replay(int argc, char **argv)
{
	const char *file = NULL, *appliance = NULL, *incident = NULL, *rpid = NULL, *rfrom = NULL,
		   *rto = NULL, *rnode = NULL, *token = NULL, *save = NULL;
	bool json = false;
	struct replay_inj inj[64];
	int ninj = 0, verbose = 0, cmd_at = -1;
	long fuzz = 0;
	uint64_t seed = 1;
	double scale = 1.0;
	bool quiet = false, list = false, keep_env = false;
	char err[1024];
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--")) {
			cmd_at = i + 1;
			argc = i;
			break;
		}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			replay_usage(stdout);
			return 0;
		} else if ((!strcmp(a, "--delay") || !strcmp(a, "--fail")) && more) {
			if (ninj == 64) {
				fprintf(stderr, "kprobe replay: at most 64 injections\n");
				return 2;
			}
			if (replay_inj_parse(argv[++i], a[2] == 'd' ? REPLAY_DELAY : REPLAY_FAIL,
					     &inj[ninj], err, sizeof(err)) < 0) {
				fprintf(stderr, "kprobe replay: %s\n", err);
				return 2;
			}
			ninj++;
		} else if (!strcmp(a, "--time-scale") && more) {
			char *end;
			scale = strtod(argv[++i], &end);
			if (*end || !(scale > 0.0) || scale > 1e6) {
				fprintf(stderr,
					"kprobe replay: --time-scale '%s': a positive number "
					"(0.5 = twice as fast, 2 = twice as slow)\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(a, "--fuzz") && more) {
			char *end;
			fuzz = strtol(argv[++i], &end, 10);
			if (*end || fuzz < 1 || fuzz > 100000) {
				fprintf(stderr, "kprobe replay: --fuzz '%s': a count from 1\n",
					argv[i]);
				return 2;
			}
		} else if (!strcmp(a, "--seed") && more) {
			seed = strtoull(argv[++i], NULL, 0);
			if (!seed)
				seed = 1;
		} else if (!strcmp(a, "--incident") && more) {
			incident = argv[++i];
		} else if (!strcmp(a, "--pid") && more) {
			rpid = argv[++i];
		} else if (!strcmp(a, "--from") && more) {
			rfrom = argv[++i];
		} else if (!strcmp(a, "--to") && more) {
			rto = argv[++i];
		} else if (!strcmp(a, "--node") && more) {
			rnode = argv[++i];
		} else if (!strcmp(a, "--appliance") && more) {
			appliance = argv[++i];
		} else if (!strcmp(a, "--token") && more) {
			token = argv[++i];
		} else if (!strcmp(a, "--save") && more) {
			save = argv[++i];
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			verbose++;
		} else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
			quiet = true;
		} else if (!strcmp(a, "--list")) {
			list = true;
		} else if (!strcmp(a, "--keep-env")) {
			keep_env = true;
		} else if (a[0] != '-' && !file) {
			file = a;
		} else {
			fprintf(stderr,
				"kprobe replay: unknown or incomplete option '%s' (see kprobe "
				"replay --help)\n",
				a);
			return 2;
		}
	}
	bool remote = incident || rpid || rfrom || rto || rnode;
	if (remote && file) {
		fprintf(stderr, "kprobe replay: give a FILE or --incident / --pid, not both\n");
		return 2;
	}
	if (remote && (incident ? rpid || rfrom || rto : !(rpid && rfrom && rto))) {
		fprintf(stderr,
			"kprobe replay: fetch either --incident KEY or --pid P --from T --to "
			"T (see --help)\n");
		return 2;
	}
	if (!remote && (appliance || save)) {
		fprintf(stderr,
			"kprobe replay: --appliance and --save go with --incident or --pid\n");
		return 2;
	}
	if (!file && !remote) {
		fprintf(stderr, "kprobe replay: which recording? (kprobe replay FILE [-- CMD], or "
				"--incident KEY, or --pid P --from T --to T; see --help)\n");
		return 2;
	}
	if (json && fuzz) {
		fprintf(stderr, "kprobe replay: --json and --fuzz do not go together\n");
		return 2;
	}
	struct rec *r;
	if (remote) {
		int fr = fetch_recording(appliance, token, incident, rpid, rfrom, rto, rnode, save,
					 quiet, &r);
		if (fr)
			return fr;
		file = incident ? incident : rpid;
	} else if (rec_open(&r, file, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe replay: %s\n", err);
		return REPLAY_EXIT_ERROR;
	}
	const struct rec_meta *m = rec_meta(r);
	if (list) {
		list_recording(r, stdout);
		rec_close(r);
		return 0;
	}
	if (m->flags & REC_F_INCOMPLETE) {
		fprintf(stderr,
			"kprobe replay: %s is incomplete (%" PRIu64 " records were lost while "
			"recording): record again with a larger probe.ebpf.ringBufferSizeKb\n",
			file, m->dropped);
		rec_close(r);
		return REPLAY_EXIT_ERROR;
	}
	struct replay_outcome ro;
	replay_recorded_outcome(r, &ro);
	char rec_out[160];
	replay_outcome_str(ro.status, ro.reason, rec_out, sizeof(rec_out));

	struct replay_opts o = {
		.rec = r,
		.argv = cmd_at > 0 && argv[cmd_at] ? argv + cmd_at : NULL,
		.inj = inj,
		.ninj = ninj,
		.time_scale = scale,
		.stdout_fd = -1,
		.stderr_fd = -1,
		.verbose = verbose,
		.keep_env = keep_env,
	};
	struct replay_result res;
	int code, jnull = -1, jerr = -1;
	if (json) {
		/* CMD's output goes into the JSON, not onto our stdout */
		jnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		jerr = memfd_create("kprobe-replay-stderr", MFD_CLOEXEC);
		o.stdout_fd = jnull;
		o.stderr_fd = jerr;
		quiet = true;
	}
	if (!fuzz) {
		int ret = replay_run(&o, &res, err, sizeof(err));
		if (ret < 0) {
			fprintf(stderr, "kprobe replay: %s\n", err);
			replay_result_free(&res);
			buf_free(&ro.out);
			rec_close(r);
			return REPLAY_EXIT_ERROR;
		}
		if (json) {
			char eb[65537];
			ssize_t en = jerr >= 0 ? pread(jerr, eb, sizeof(eb), 0) : 0;
			en = en < 0 ? 0 : en;
			struct kp_buf jb = {0};
			replay_result_json(&jb, &res, &ro, eb, KP_MIN((size_t)en, (size_t)65536),
					   en > 65536, 65536);
			buf_puts(&jb, "\n");
			fwrite(jb.data, 1, jb.len, stdout);
			buf_free(&jb);
			if (jnull >= 0)
				close(jnull);
			if (jerr >= 0)
				close(jerr);
		}
		if (res.diverged || res.failed) {
			fprintf(stderr, "kprobe replay: %s",
				res.report.data ? res.report.data : "");
			if (res.notes.len && !verbose)
				fprintf(stderr, "kprobe replay: before that:\n%s", res.notes.data);
			code = res.diverged ? REPLAY_EXIT_DIVERGED : REPLAY_EXIT_ERROR;
		} else {
			code = exit_code_of(res.status);
		}
		if (!quiet) {
			char now[160], cmp[200];
			replay_outcome_str(res.status, res.reason, now, sizeof(now));
			out_compare(&ro.out, ro.out_cut, &res.out, res.out_cut, cmp, sizeof(cmp));
			fprintf(stderr,
				"kprobe replay: %" PRIu64 " calls served, %" PRIu64
				" compared, %" PRIu64 " run for real, %" PRIu64
				" clock reads from virtual time, %" PRIu64
				" from the model; %.1f ms wall, %.1f ms virtual\n",
				res.served, res.compared, res.passed, res.synthesized, res.modeled,
				(double)res.wall_ns / 1e6, (double)res.virt_ns / 1e6);
			if (!res.diverged && !res.failed) {
				if (strcmp(now, rec_out))
					fprintf(stderr, "kprobe replay: outcome: %s → %s\n",
						rec_out, now);
				else
					fprintf(stderr, "kprobe replay: outcome: %s, as recorded\n",
						now);
				fprintf(stderr, "kprobe replay: stdout: %s\n", cmp);
				if (res.notes.len && !verbose)
					fprintf(stderr, "kprobe replay: notes:\n%s",
						res.notes.data);
			}
		}
		replay_result_free(&res);
	} else {
		/* fuzzing: every --delay (or a default set) is drawn anew per variant */
		struct replay_inj def[8];
		if (!ninj) {
			const char *d[] = {"poll:+500ms",	"ppoll:+500ms",
					   "select:+500ms",	"pselect6:+500ms",
					   "epoll_wait:+500ms", "epoll_pwait:+500ms",
					   "recvfrom:+500ms",	"read:+500ms"};
			for (int i = 0; i < 8; i++)
				replay_inj_parse(d[i], REPLAY_DELAY, &def[i], err, sizeof(err));
			o.inj = def;
			o.ninj = 8;
		}
		int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
		o.stdout_fd = o.stderr_fd = devnull;
		long changed = 0;
		if (!quiet)
			fprintf(stderr,
				"kprobe replay: fuzzing %ld variants; recorded outcome: %s\n", fuzz,
				rec_out);
		for (long v = 0; v < fuzz; v++) {
			o.fuzz_seed = seed + (uint64_t)v;
			if (replay_run(&o, &res, err, sizeof(err)) < 0) {
				fprintf(stderr, "kprobe replay: variant %ld: %s\n", v + 1, err);
				replay_result_free(&res);
				continue;
			}
			char now[160];
			replay_outcome_str(res.status, res.reason, now, sizeof(now));
			bool same_status = exit_code_of(res.status) == exit_code_of(ro.status);
			bool same_out = ro.out_cut || res.out_cut || out_same(&ro.out, &res.out);
			bool ch = res.diverged || res.failed || !same_status || !same_out;
			changed += ch;
			if (!quiet) {
				char why[160] = "";
				if (!same_status)
					snprintf(why, sizeof(why), ": exit %d -> %d",
						 exit_code_of(ro.status), exit_code_of(res.status));
				if (!same_out)
					snprintf(why + strlen(why), sizeof(why) - strlen(why),
						 "%s stdout differs", why[0] ? "," : ":");
				fprintf(stderr, "  variant %ld (seed %" PRIu64 "): %s%s%s%s\n",
					v + 1, o.fuzz_seed,
					res.diverged ? "diverged"
					: res.failed ? "stopped"
						     : now,
					ch ? "  [CHANGED" : "", why, ch ? "]" : "");
				/* which delays it drew */
				const char *p = res.notes.data;
				int shown = 0;
				while (p && *p && shown < 4) {
					const char *nl = strchr(p, '\n');
					size_t l = nl ? (size_t)(nl - p) : strlen(p);
					if (memmem(p, l, "delayed by", 10)) {
						fprintf(stderr, "      %.*s\n", (int)l, p);
						shown++;
					}
					p = nl ? nl + 1 : NULL;
				}
			}
			replay_result_free(&res);
		}
		close(devnull);
		fprintf(stderr, "kprobe replay: %ld of %ld variants changed the outcome\n", changed,
			fuzz);
		code = changed ? 1 : 0;
	}
	buf_free(&ro.out);
	rec_close(r);
	return code;
}
