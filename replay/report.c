/*
 * report.c - a replay's result as JSON (replay_result_json): the answer of kprobed's
 * POST /api/v1/replay (through its worker, replay/worker.c) and of `kprobe replay --json`.
 * Field meanings are in replay.h above replay_result_json.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "common/json.h"
#include "replay/replay.h"

static void json_bytes(struct kp_buf *b, const char *key, const char *p, size_t n, size_t cap,
		       bool cut)
{
	buf_printf(b, ",\"%s\":", key);
	json_str(b, p ? p : "", KP_MIN(n, cap));
	buf_printf(b, ",\"%s_truncated\":%s", key, cut || n > cap ? "true" : "false");
}

/* "expected: ..." / "actual: ..." lines of a divergence's why, without the label. */
static void why_line(const char *why, const char *label, char *out, size_t cap)
{
	out[0] = 0;
	const char *p = strstr(why, label);
	if (!p)
		return;
	p += strlen(label);
	while (*p == ' ')
		p++;
	size_t n = strcspn(p, "\n");
	snprintf(out, cap, "%.*s", (int)n, p);
}

void replay_result_json(struct kp_buf *b, const struct replay_result *res,
			const struct replay_outcome *rec, const char *err_bytes, size_t err_len,
			bool err_cut, size_t cap)
{
	char now[160], was[160];
	replay_outcome_str(res->status, res->reason, now, sizeof(now));
	replay_outcome_str(rec->status, rec->reason, was, sizeof(was));
	const char *state = res->diverged ? "diverged" : res->failed ? "failed" : "done";
	buf_printf(b, "{\"state\":\"%s\",\"outcome\":", state);
	if (res->diverged || res->failed)
		json_cstr(b, res->diverged ? "diverged" : "replay failed");
	else
		json_cstr(b, now);
	buf_puts(b, ",\"recorded_outcome\":");
	json_cstr(b, was);
	bool changed = res->diverged || res->failed || strcmp(now, was) != 0;
	buf_printf(b, ",\"changed\":%s,\"outcome_change\":", changed ? "true" : "false");
	if (res->diverged || res->failed) {
		buf_puts(b, "null");
	} else {
		char ch[340];
		if (strcmp(now, was))
			snprintf(ch, sizeof(ch), "%s → %s", was, now);
		else
			snprintf(ch, sizeof(ch), "%s, as recorded", now);
		json_cstr(b, ch);
	}
	if (res->status >= 0 && WIFEXITED(res->status))
		buf_printf(b, ",\"exit_status\":%d,\"exit_signal\":null", WEXITSTATUS(res->status));
	else if (res->status >= 0 && WIFSIGNALED(res->status))
		buf_printf(b, ",\"exit_status\":null,\"exit_signal\":%d", WTERMSIG(res->status));
	else
		buf_puts(b, ",\"exit_status\":null,\"exit_signal\":null");
	if (rec->status >= 0 && WIFEXITED(rec->status))
		buf_printf(b, ",\"recorded_exit_status\":%d", WEXITSTATUS(rec->status));
	else
		buf_puts(b, ",\"recorded_exit_status\":null");
	buf_puts(b, ",\"reason\":");
	json_cstr(b, res->reason);
	buf_printf(b, ",\"diverged\":%s,\"failed\":%s", res->diverged ? "true" : "false",
		   res->failed ? "true" : "false");
	if (res->diverged) {
		const struct replay_divergence *d = &res->div;
		char exp[1024], act[1024];
		why_line(d->why, "expected:", exp, sizeof(exp));
		why_line(d->why, "actual:", act, sizeof(act));
		buf_printf(b,
			   ",\"divergence\":{\"thread\":%u,\"recorded_thread\":%u,\"ordinal\":%u,"
			   "\"seq\":%" PRIu64 ",\"call\":",
			   d->tid, d->rec_tid, d->ord, d->seq);
		json_cstr(b, d->call);
		buf_puts(b, ",\"recorded\":");
		json_cstr(b, d->recorded);
		char first[512];
		snprintf(first, sizeof(first), "%.*s", (int)strcspn(d->why, "\n"), d->why);
		buf_puts(b, ",\"what\":");
		json_cstr(b, first);
		buf_puts(b, ",\"expected\":");
		if (exp[0])
			json_cstr(b, exp);
		else
			buf_puts(b, "null");
		buf_puts(b, ",\"actual\":");
		if (act[0])
			json_cstr(b, act);
		else
			buf_puts(b, "null");
		buf_puts(b, "}");
	} else {
		buf_puts(b, ",\"divergence\":null");
	}
	buf_puts(b, ",\"report\":");
	json_str(b, res->report.data ? res->report.data : "", res->report.len);
	buf_puts(b, ",\"notes\":");
	json_str(b, res->notes.data ? res->notes.data : "", KP_MIN(res->notes.len, cap));
	json_bytes(b, "stdout", res->out.data, res->out.len, cap, res->out_cut);
	json_bytes(b, "recorded_stdout", rec->out.data, rec->out.len, cap, rec->out_cut);
	buf_puts(b, ",\"stdout_identical\":");
	if (rec->out_cut || res->out_cut)
		buf_puts(b, "null");
	else
		buf_puts(b, rec->out.len == res->out.len &&
					    (!rec->out.len ||
					     !memcmp(rec->out.data, res->out.data, rec->out.len))
				    ? "true"
				    : "false");
	json_bytes(b, "stderr", err_bytes, err_len, cap, err_cut);
	buf_printf(b,
		   ",\"stats\":{\"served\":%" PRIu64 ",\"compared\":%" PRIu64 ",\"passed\":%" PRIu64
		   ",\"synthesized\":%" PRIu64 ",\"modeled\":%" PRIu64 ",\"held\":%" PRIu64
		   ",\"order_breaks\":%" PRIu64 ",\"wall_ms\":%.1f,\"virtual_ms\":%.1f}}",
		   res->served, res->compared, res->passed, res->synthesized, res->modeled,
		   res->held, res->order_breaks, (double)res->wall_ns / 1e6,
		   (double)res->virt_ns / 1e6);
}
