/*
 * sysc.h - the one table of system calls that replay capture records and the replay engine serves
 * or compares (x86-64 numbers). The capture side turns it into the kernel's `descs` map (what to
 * copy per call), the engine into its seccomp filter (which calls stop) and its dispatch (what a
 * stop means). A syscall absent from this table is neither recorded nor stopped: it runs natively
 * during replay (mmap, brk, futex, clone, execve, signals, wait4, ...).
 */
#ifndef KP_REPLAY_SYSC_H
#define KP_REPLAY_SYSC_H

#include <linux/filter.h>
#include <linux/types.h>
#include <stdbool.h>

#include "bpf/capture.h"

/* How the replay treats a call. */
enum sysc_kind {
	SK_IN = 1,  /* input: answered from the recording, the real call is suppressed */
	SK_STAT,    /* input answered with a structure (stat, uname, getsockopt, ...) */
	SK_OUT,	    /* output: compared; runs for real on real fds, suppressed on replayed ones */
	SK_SOCKOP,  /* setsockopt, bind, listen, shutdown: suppressed on replayed sockets */
	SK_WAIT,    /* poll, select, epoll_wait families: readiness from the recording / model */
	SK_TIME,    /* clock reads (the vDSO ones are redirected to these) */
	SK_SLEEP,   /* nanosleep, clock_nanosleep: virtual time passes, nobody sleeps */
	SK_CONNECT, /* answered from the recording; the socket stays unconnected */
	SK_NEWFD,   /* creates fds: the engine creates the object, installs it at the recorded
		     * number (seccomp ADDFD), so fd numbers match the recording */
	SK_CLOSE,   /* runs for real (frees the slot), the model forgets the fd */
	SK_DUP,	    /* dup, dup2, dup3, fcntl(F_DUPFD*): run for real, the model copies the fd */
	SK_UNSUP,   /* recorded but not replayable (recvmmsg, sendmmsg, openat2) */
};

struct sysc {
	int nr;
	const char *name;
	enum sysc_kind kind;
	struct kp_cap_desc cap; /* what the kernel side captures */
};

/* Lookup by number (NULL when the call is not in the table) or by name ("read", "fsync"). */
const struct sysc *sysc_by_nr(long nr);
const struct sysc *sysc_by_name(const char *name);
int sysc_count(void);
const struct sysc *sysc_at(int i);

/* Name of any syscall number this table knows, else "syscall_NNN" in a static buffer. */
const char *sysc_name(long nr);

/* Fills descs[0..KP_CAP_NR_MAX) (zeroed slots = not captured). */
void sysc_fill_descs(struct kp_cap_desc *descs);

/* Does the argument filter of s (fcntl commands, ioctl requests) accept these arguments? */
bool sysc_argf_ok(const struct sysc *s, const __u64 *args);

/*
 * Builds the replay's seccomp program: SECCOMP_RET_USER_NOTIF for every call in the table
 * (respecting argument filters), SECCOMP_RET_ALLOW for everything else, as a binary search on the
 * syscall number. Returns the instruction count, or -ENOSPC when max is too small.
 */
int sysc_filter_build(struct sock_filter *out, int max);

#endif
