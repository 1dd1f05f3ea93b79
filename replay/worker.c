/*
 * worker.c - `kprobed --replay-worker`: one replay in a process of its own, for kprobed's
 * POST /api/v1/replay. kprobed is many-threaded (HTTP, ingest, engine, store): ptrace stops,
 * SIGCHLD delivery, CPU pinning and a tracer that may be killed on a timeout all want a
 * single-threaded process that nothing else lives in, so kprobed starts its own binary in this
 * mode (posix_spawn of /proc/self/exe) and reads one JSON object back from its stdout.
 *
 *   kprobed --replay-worker --rec FILE --out FILE --err FILE [--delay SPEC]... [--fail SPEC]...
 *           [--time-scale F] [--keep-env] [--cap BYTES] -- CMD [ARGS...]
 *
 * The command's stdout and stderr go to --out and --err; the JSON (replay_result_json) goes to
 * stdout; exit 0 when the replay ran (whatever its outcome), 1 with {"error": "..."} when it
 * could not start, 2 on a usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "replay/cli.h"
#include "replay/rec.h"
#include "replay/replay.h"

static int fail_json(const char *fmt, const char *what)
{
	char m[1200];
	snprintf(m, sizeof(m), fmt, what);
	struct kp_buf b = {0};
	buf_puts(&b, "{\"error\":");
	json_cstr(&b, m);
	buf_puts(&b, "}\n");
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
	return 1;
}

int replay_worker_main(int argc, char **argv)
{
	const char *recf = NULL, *outf = NULL, *errf = NULL;
	static struct replay_inj inj[64];
	int ninj = 0, cmd_at = -1;
	double scale = 1.0;
	bool keep_env = false;
	size_t cap = 65536;
	char err[1024];
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool more = i + 1 < argc;
		if (!strcmp(a, "--")) {
			cmd_at = i + 1;
			break;
		} else if (!strcmp(a, "--rec") && more) {
			recf = argv[++i];
		} else if (!strcmp(a, "--out") && more) {
			outf = argv[++i];
		} else if (!strcmp(a, "--err") && more) {
			errf = argv[++i];
		} else if ((!strcmp(a, "--delay") || !strcmp(a, "--fail")) && more && ninj < 64) {
			if (replay_inj_parse(argv[++i], a[2] == 'd' ? REPLAY_DELAY : REPLAY_FAIL,
					     &inj[ninj], err, sizeof(err)) < 0)
				return fail_json("%s", err) + 1;
			ninj++;
		} else if (!strcmp(a, "--time-scale") && more) {
			scale = strtod(argv[++i], NULL);
			if (!(scale > 0.0) || scale > 1e6)
				return fail_json("--time-scale '%s': a positive number", argv[i]) +
				       1;
		} else if (!strcmp(a, "--keep-env")) {
			keep_env = true;
		} else if (!strcmp(a, "--cap") && more) {
			cap = (size_t)strtoul(argv[++i], NULL, 10);
		} else {
			return fail_json("replay worker: bad argument '%s'", a) + 1;
		}
	}
	if (!recf || !outf || !errf || cmd_at < 0 || !argv[cmd_at])
		return fail_json("%s", "replay worker: need --rec, --out, --err and -- CMD") + 1;
	struct rec *r;
	if (rec_open(&r, recf, err, sizeof(err)) < 0)
		return fail_json("%s", err);
	if (rec_meta(r)->flags & REC_F_INCOMPLETE) {
		rec_close(r);
		return fail_json("%s", "the recording is incomplete (records were lost while "
				       "capturing): it cannot be replayed faithfully");
	}
	int ofd = open(outf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int efd = open(errf, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (ofd < 0 || efd < 0) {
		rec_close(r);
		return fail_json("cannot create the output files: %s", strerror(errno));
	}
	struct replay_opts o = {
		.rec = r,
		.argv = argv + cmd_at,
		.inj = inj,
		.ninj = ninj,
		.time_scale = scale,
		.stdout_fd = ofd,
		.stderr_fd = efd,
		.keep_env = keep_env,
	};
	struct replay_result res;
	int ret = replay_run(&o, &res, err, sizeof(err));
	if (ret < 0) {
		replay_result_free(&res);
		rec_close(r);
		return fail_json("%s", err);
	}
	struct replay_outcome ro;
	replay_recorded_outcome(r, &ro);
	char *eb = xmalloc(cap + 1);
	ssize_t en = pread(efd, eb, cap + 1, 0);
	en = en < 0 ? 0 : en;
	struct kp_buf b = {0};
	replay_result_json(&b, &res, &ro, eb, KP_MIN((size_t)en, cap), (size_t)en > cap, cap);
	buf_puts(&b, "\n");
	fwrite(b.data, 1, b.len, stdout);
	fflush(stdout);
	buf_free(&b);
	free(eb);
	buf_free(&ro.out);
	replay_result_free(&res);
	rec_close(r);
	close(ofd);
	close(efd);
	return 0;
}
