/*
 * replay.h - the replay engine: runs a command under ptrace with a seccomp filter, answers its
 * input-side system calls from a recording (rec.h), compares its output-side calls, and reports
 * the first divergence. Injections (delay, fail, time scale) change what the recorded world does.
 *
 * How a call is handled (details in engine.c):
 *   - calls outside replay/sysc.c's table never stop: they run natively;
 *   - on script (this thread has seen nothing but its recorded inputs), each call is matched with
 *     the thread's next recorded call: inputs are answered from the recording and suppressed,
 *     outputs are compared (bytes, fd) and run for real on real fds (stdout, files) or suppressed
 *     on replayed ones (sockets, pipes); a mismatching output is a divergence and stops the run;
 *   - a mismatching input (another timeout, another path), an injected failure, or a delay that
 *     changes a result takes the thread off script: from then on it is answered by the model of
 *     the recorded world (per-connection byte timelines in virtual time, the real file system),
 *     its outputs are no longer compared, and the outcome (exit status, stdout) is what it is.
 *
 * Threads replay from their own recorded streams and are held so that their calls come in the
 * recorded global order; signals pass through. Virtual time comes from the recording's
 * timestamps; clock reads, vDSO ones included (redirected to real system calls at exec), are
 * answered from it.
 */
#ifndef KP_REPLAY_H
#define KP_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "replay/rec.h"

#define REPLAY_EXIT_DIVERGED 86 /* a divergence stopped the replay */
#define REPLAY_EXIT_ERROR    85 /* the replay could not run or continue (bad recording, ...) */

enum replay_inj_kind { REPLAY_DELAY = 1, REPLAY_FAIL };

/* One --delay / --fail. */
struct replay_inj {
	enum replay_inj_kind kind;
	int nr;		   /* system call number */
	int fd;		   /* -1: any fd */
	uint32_t nth;	   /* 0: every matching call; K: only the K-th (from 1) */
	uint64_t delay_ns; /* DELAY (with fuzzing: the upper bound of a uniform draw) */
	int err;	   /* FAIL: the errno returned */
	char spec[128];	   /* as written, for reports */
};

/*
 * Parses "CALL[:fd=N][:nth=K]:+DURATION" (delay) or "CALL[:nth=K]:ERRNO" (fail; ERRNO as EIO or
 * 5). Returns 0 or -EINVAL with a message naming the bad part.
 */
int replay_inj_parse(const char *spec, enum replay_inj_kind kind, struct replay_inj *out, char *err,
		     size_t errlen);

struct replay_opts {
	const struct rec *rec;
	char *const *argv; /* the command to run (NULL: the recorded command line) */
	const struct replay_inj *inj;
	int ninj;
	double time_scale;	  /* recorded intervals are multiplied by this (1.0) */
	uint64_t fuzz_seed;	  /* != 0: every delay is drawn from [0, delay_ns] with this seed */
	int stdout_fd, stderr_fd; /* -1: inherited */
	int verbose;		  /* 1: notes as they happen, 2: a line per served call */
	bool keep_env;		  /* run in this environment and cwd, not the recorded ones */
};

/* The first divergence, field by field (the same as the report's text). */
struct replay_divergence {
	uint32_t tid;	    /* the replayed thread */
	uint32_t rec_tid;   /* the recorded thread it plays */
	uint32_t ord;	    /* the call's ordinal in that thread's recorded stream */
	uint64_t seq;	    /* ... and in the recording's global order */
	char call[256];	    /* what the program called: "sendto(fd=3, 12 bytes)" */
	char recorded[256]; /* what the recording has there, with its result */
	char why[2048];	    /* what differs; for bytes, "expected: ..." and "actual: ..." lines */
};

struct replay_result {
	int status;	      /* wait status of the command's first process (-1 unknown) */
	bool diverged;	      /* a divergence stopped the run */
	bool failed;	      /* the replay could not continue (report says why) */
	struct kp_buf report; /* the divergence / failure report, human text */
	struct replay_divergence div; /* when diverged */
	struct kp_buf notes;  /* off-script transitions, injections applied, order breaks */
	struct kp_buf out;    /* bytes the replayed command wrote to its stdout */
	bool out_cut;	      /* more than could be kept */
	char reason[128];     /* the last failure cause seen ("timeout", "EIO from fsync"), or "" */
	uint64_t served;      /* calls answered (suppressed) */
	uint64_t compared;    /* outputs compared with the recording */
	uint64_t passed;      /* calls let through to run for real */
	uint64_t synthesized; /* clock reads answered from virtual time (vDSO in the recording) */
	uint64_t modeled;     /* calls answered by the model (off script) */
	uint64_t held;	      /* calls held for their turn in the global order */
	uint64_t order_breaks;
	uint64_t stops; /* all seccomp stops */
	uint64_t wall_ns;
	uint64_t virt_ns; /* virtual time elapsed */
};

/*
 * Runs one replay. Returns 0 when the command ran (see res for how), or -errno with a message in
 * err when it could not start. res must be freed with replay_result_free.
 */
int replay_run(const struct replay_opts *o, struct replay_result *res, char *err, size_t errlen);
void replay_result_free(struct replay_result *r);

/*
 * Why a recorded or replayed call counts as a failure cause: a wait that timed out gives
 * "timeout", a call that failed with a telling errno gives "EIO from fsync". Returns false when
 * the call says nothing.
 */
bool replay_call_reason(const struct kp_cap_rec *c, char *buf, size_t len);

/* The recorded outcome: the command's exit status, stdout bytes and last failure cause. */
struct replay_outcome {
	int status;	   /* wait status, -1 unknown */
	struct kp_buf out; /* stdout bytes (as recorded) */
	bool out_cut;	   /* some were not captured (truncated payloads) */
	char reason[128];
};
void replay_recorded_outcome(const struct rec *r, struct replay_outcome *o);
/* "succeeded", "failed (timeout)", "killed (SIGSEGV)" */
void replay_outcome_str(int status, const char *reason, char *buf, size_t len);

/*
 * Appends a replay's result as one JSON object (kprobed's POST /api/v1/replay answer, less its
 * "id" and "recording"; `kprobe replay --json`). rec: the recorded outcome; err_bytes: what the
 * command wrote to stderr; byte fields are cut at cap bytes (and flagged). Fields:
 *   state             "done" | "diverged" | "failed" (the replay could not continue)
 *   outcome           "succeeded", "failed (timeout)", "killed (SIGSEGV)", "diverged", ...
 *   recorded_outcome  the same for the recording
 *   changed           outcome or exit differ from the recording (or it diverged / failed)
 *   outcome_change    "failed (timeout) → succeeded", "succeeded, as recorded", or null
 *   exit_status, exit_signal, recorded_exit_status   numbers or null
 *   reason            the last failure cause seen ("timeout", "EIO from fsync") or ""
 *   diverged, failed  booleans
 *   divergence        null, or {thread, recorded_thread, ordinal, seq, call, recorded, what,
 *                     expected, actual} (expected/actual: the bytes, quoted, or null)
 *   report, notes     the human-readable report and the notes (off-script moves, injections)
 *   stdout, recorded_stdout, stderr   text (invalid UTF-8 as U+FFFD), each with *_truncated
 *   stdout_identical  true / false, null when not comparable (more than was captured)
 *   stats             {served, compared, passed, synthesized, modeled, held, order_breaks,
 *                      wall_ms, virtual_ms}
 */
void replay_result_json(struct kp_buf *b, const struct replay_result *res,
			const struct replay_outcome *rec, const char *err_bytes, size_t err_len,
			bool err_cut, size_t cap);

#endif
