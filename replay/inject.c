/*
 * inject.c - parses --delay and --fail specifications, and says what counts as an outcome:
 * the recorded one (exit status, stdout, last failure cause) and how to name it.
 *
 *   --delay CALL[:fd=N][:nth=K]:+DURATION     e.g. recvfrom:fd=3:+800ms, poll:nth=2:+1s
 *   --fail  CALL[:fd=N][:nth=K]:ERRNO         e.g. fsync:EIO, connect:nth=1:ECONNREFUSED
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "replay/replay.h"
#include "replay/sysc.h"

static int errno_parse(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);
	if (!*end && end != s)
		return v > 0 && v < 4096 ? (int)v : -1;
	for (int e = 1; e < 134; e++) {
		const char *n = strerrorname_np(e);
		if (n && !strcmp(n, s))
			return e;
	}
	return -1;
}

int replay_inj_parse(const char *spec, enum replay_inj_kind kind, struct replay_inj *out, char *err,
		     size_t errlen)
{
	const char *what = kind == REPLAY_DELAY ? "--delay" : "--fail";
	const char *form = kind == REPLAY_DELAY ? "CALL[:fd=N][:nth=K]:+DURATION"
						: "CALL[:fd=N][:nth=K]:ERRNO";
	memset(out, 0, sizeof(*out));
	out->kind = kind;
	out->fd = -1;
	snprintf(out->spec, sizeof(out->spec), "%s", spec);
	char buf[256];
	if (strlen(spec) >= sizeof(buf)) {
		snprintf(err, errlen, "%s '%.40s...': too long", what, spec);
		return -EINVAL;
	}
	strcpy(buf, spec);
	char *parts[8];
	int n = 0;
	for (char *save, *p = strtok_r(buf, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
		if (n == 8) {
			snprintf(err, errlen, "%s '%s': too many ':' parts (form %s)", what, spec,
				 form);
			return -EINVAL;
		}
		parts[n++] = p;
	}
	if (n < 2) {
		snprintf(err, errlen, "%s '%s': expected %s", what, spec, form);
		return -EINVAL;
	}
	const struct sysc *s = sysc_by_name(parts[0]);
	if (!s) {
		snprintf(err, errlen,
			 "%s '%s': '%s' is not a system call the replay serves (e.g. "
			 "read, recvfrom, poll, connect, write, fsync, openat)",
			 what, spec, parts[0]);
		return -EINVAL;
	}
	out->nr = s->nr;
	for (int i = 1; i < n - 1; i++) {
		char *end;
		if (!strncmp(parts[i], "fd=", 3)) {
			long v = strtol(parts[i] + 3, &end, 10);
			if (*end || end == parts[i] + 3 || v < 0 || v > 1 << 20) {
				snprintf(err, errlen, "%s '%s': bad fd '%s'", what, spec, parts[i]);
				return -EINVAL;
			}
			out->fd = (int)v;
		} else if (!strncmp(parts[i], "nth=", 4)) {
			long v = strtol(parts[i] + 4, &end, 10);
			if (*end || end == parts[i] + 4 || v < 1 || v > 1 << 30) {
				snprintf(err, errlen, "%s '%s': bad nth '%s' (1 is the first call)",
					 what, spec, parts[i]);
				return -EINVAL;
			}
			out->nth = (uint32_t)v;
		} else {
			snprintf(err, errlen, "%s '%s': unknown part '%s' (form %s)", what, spec,
				 parts[i], form);
			return -EINVAL;
		}
	}
	const char *last = parts[n - 1];
	if (kind == REPLAY_DELAY) {
		if (last[0] != '+' || parse_duration_ns(last + 1, &out->delay_ns) < 0) {
			snprintf(err, errlen,
				 "%s '%s': the last part must be +DURATION (+800ms, +1.5s),"
				 " got '%s'",
				 what, spec, last);
			return -EINVAL;
		}
	} else {
		out->err = errno_parse(last);
		if (out->err < 0) {
			snprintf(err, errlen,
				 "%s '%s': '%s' is not an errno (EIO, ENOSPC, "
				 "ECONNRESET, or a number)",
				 what, spec, last);
			return -EINVAL;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------ outcomes */

static bool telling_errno(int e)
{
	switch (e) {
	case EIO:
	case ENOSPC:
	case EDQUOT:
	case EROFS:
	case EPIPE:
	case ECONNREFUSED:
	case ECONNRESET:
	case ECONNABORTED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENOMEM:
	case EACCES:
	case EPERM:
	case EBADF:
	case EFAULT:
		return true;
	}
	return false;
}

bool replay_call_reason(const struct kp_cap_rec *c, char *buf, size_t len)
{
	const struct sysc *s = sysc_by_nr(c->nr);
	if (!s)
		return false;
	if (s->kind == SK_WAIT && c->ret == 0) {
		/* poll and epoll_wait take an int timeout: -1 waits forever, 0 only polls */
		long to = c->nr == 7			 ? (long)(int)c->args[2]
			  : c->nr == 232 || c->nr == 281 ? (long)(int)c->args[3]
							 : 1;
		if (to > 0) {
			snprintf(buf, len, "timeout");
			return true;
		}
		return false;
	}
	if (c->ret < 0 && c->ret > -4096 && telling_errno((int)-c->ret)) {
		const char *n = strerrorname_np((int)-c->ret);
		snprintf(buf, len, "%s from %s", n ? n : "error", s->name);
		return true;
	}
	return false;
}

void replay_recorded_outcome(const struct rec *r, struct replay_outcome *o)
{
	const struct rec_meta *m = rec_meta(r);
	memset(o, 0, sizeof(*o));
	o->status = m->root_status;
	int root = rec_thread_find(r, m->root_tid);
	uint32_t root_tgid = rec_thread(r, root)->tgid;
	for (uint64_t n = 0; n < rec_ncalls(r); n++) {
		int th;
		const struct kp_cap_rec *c = rec_call_seq(r, n, &th);
		const struct rec_thread *t = rec_thread(r, th);
		if (!(t->flags & REC_T_TREE))
			continue;
		if (t->tgid == root_tgid)
			replay_call_reason(c, o->reason, sizeof(o->reason));
		const struct sysc *s = sysc_by_nr(c->nr);
		if (!s || s->kind != SK_OUT || c->ret <= 0 || !m->std[1].ino ||
		    c->fd_ino != m->std[1].ino)
			continue;
		if (c->nr == 74 || c->nr == 75 || c->nr == 77)
			continue;
		buf_append(&o->out, kp_cap_payload(c),
			   KP_MIN((uint64_t)c->payload_len, (uint64_t)c->ret));
		if ((uint64_t)c->ret > c->payload_len)
			o->out_cut = true;
	}
}

void replay_outcome_str(int status, const char *reason, char *buf, size_t len)
{
	if (status < 0) {
		snprintf(buf, len, "unknown");
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		snprintf(buf, len, "succeeded");
	} else if (WIFEXITED(status)) {
		if (reason && *reason)
			snprintf(buf, len, "failed (%s)", reason);
		else
			snprintf(buf, len, "failed (exit %d)", WEXITSTATUS(status));
	} else if (WIFSIGNALED(status)) {
		const char *n = sigabbrev_np(WTERMSIG(status));
		snprintf(buf, len, "killed (SIG%s)", n ? n : "?");
	} else {
		snprintf(buf, len, "status 0x%x", status);
	}
}
