/*
 * engine.c - the replay engine (contract in replay.h): one supervisor thread that is both the
 * ptrace tracer of the replayed process tree and the seccomp user-notification listener.
 *
 * Mechanisms, and why (costs measured on this kind of machine, see bench/replay/RESULT.md):
 *   - seccomp filter (replay/sysc.c): SECCOMP_RET_USER_NOTIF for the calls in the table, ALLOW for
 *     the rest, so unserved calls run at native speed. A user notification costs one round trip
 *     to this process (about half of a SECCOMP_RET_TRACE ptrace stop, which needs waitpid +
 *     GETREGS + SETREGS), and it lets us install fds at chosen numbers in the tracee
 *     (SECCOMP_IOCTL_NOTIF_ADDFD) before replying, which a ptrace stop cannot do without
 *     injecting system calls.
 *   - ptrace stays for the process lifecycle: exec (vDSO patching, a fresh /proc/PID/mem),
 *     clone/fork/vfork (which recorded thread a new task is), exits, and signals, which pass
 *     through untouched.
 *   - tracee memory: pread/pwrite on /proc/PID/mem, one descriptor per process kept open
 *     (a 64-byte pwrite measured ~1.2 us here against ~1.5 us for process_vm_writev, and it
 *     writes read-only pages too); process_vm_readv/writev when that file cannot be used.
 *   - a served call costs three system calls here (NOTIF_RECV, one pwrite per payload piece,
 *     NOTIF_SEND) and two context switches; nothing else is on that path (no poll, clock read,
 *     allocation or NOTIF_ID_VALID: the memory descriptor pins the process's mm, and a replay
 *     makes no security decision on what it reads back). bench/replay measures the floor.
 *   - tracer and tracee are pinned to one CPU (unpinned, every stop costs a cross-CPU wake-up).
 *   - fds: every call that creates an fd is replayed by creating the object here (the real file,
 *     a fresh unconnected socket, a pipe, ...) and installing it at the recorded number. Files are
 *     real, so mmap and fstat-free code paths work; sockets are real objects but never connected,
 *     all their I/O is answered from the recording or the model. Reads of real files are served
 *     from the recording too, and the shared file offset is moved along so real and served calls
 *     agree.
 *
 * Section banners: state and helpers / time / model answers / recorded answers / matching /
 * dispatch / lifecycle / run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "replay/internal.h"
#include "replay/replay.h"
#include "replay/sysc.h"

#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define SYNTH_STEP_NS 1000ull /* each clock read the recording did not see moves time by 1 us */
#define HOLD_BREAK_MS 20      /* a held call waits this long for the rest before order breaks */
#define LOOKAHEAD_MAX 100000  /* off-script: how far to look for a matching recorded call */
#define MAX_FDS	      65536
#define OUT_CAP	      (16u << 20)
#define SCRATCH	      (2 * KP_CAP_MAX_PAYLOAD + 4096)
#define NONE_T	      UINT64_MAX

/* ================================================================== state and helpers */

enum fkind {
	FK_NONE = 0, /* unknown to the model: treated as real */
	FK_EXT,	     /* inherited from kprobe replay (the command's stdin/stdout/stderr): real */
	FK_FILE,     /* a real file opened for the tracee (sup holds the same open file) */
	FK_VFILE,    /* a file that no longer exists: a placeholder, all reads served */
	FK_SOCK,     /* a socket: real object, never connected, I/O served */
	FK_PIPE,     /* pipe / socketpair end: I/O served */
	FK_OTHER,    /* eventfd, timerfd, epoll, signalfd, inotify: reads served */
};

struct rsock {
	int refs;
	int ep;	      /* recorded connection side (model), -1 unknown */
	uint64_t off; /* bytes of its incoming stream consumed */
};

struct fdm {
	uint8_t kind;
	uint8_t ext;   /* FK_EXT: which of 0, 1, 2 */
	bool seekable; /* FK_FILE on a regular file: served reads move the shared offset */
	int sup;       /* our handle on the same open file (-1) */
	struct rsock *rs;
};

struct proc {
	pid_t tgid;
	int memfd;
	int pidfd;
	int refs;
	bool started;	       /* has exec'd the command: calls before that run untouched */
	uint64_t ld_lo, ld_hi; /* its dynamic loader's code: calls from there are the machine's */
	uint32_t rtgid;	       /* recorded process it replays (0 unknown) */
	struct fdm *fds;
	int nfds;
	struct proc *next;
};

struct task {
	pid_t tid;
	struct proc *proc;
	int rt;	      /* recorded thread index, -1: unmapped (answered by the model) */
	uint32_t cur; /* next ordinal of its stream */
	uint32_t nchildren;
	bool off;	   /* off script */
	bool linked;	   /* the parent's clone event has been seen (or it is the root) */
	bool want_initial; /* its first SIGSTOP is still to come */
	bool parked;	   /* stopped at that SIGSTOP, waiting to be linked */
	struct task *hnext;
};

struct held {
	struct seccomp_notif req;
	struct held *next;
};

/*
 * A served call (or a new task's first run) waiting for its turn to run user code. In a
 * multi-task replay only one task runs between system calls at a time, and ready tasks are let
 * go in the recorded order of their *next* call's entry: whichever reached its next system call
 * first in the recording (and so, most likely, took the contended lock first) goes first.
 */
struct pend {
	struct task *t;
	bool ptrace_cont; /* a new task: PTRACE_CONT instead of a notification answer */
	struct seccomp_notif_resp resp;
	uint64_t key;
	struct pend *next;
};

struct act {
	enum { A_VAL, A_ERR, A_CONT, A_HOLD, A_STOP } k;
	int64_t v;
};

#define VAL(x)	((struct act){A_VAL, (int64_t)(x)})
#define ERR(x)	((struct act){A_ERR, (int64_t)(x)})
#define CONT	((struct act){A_CONT, 0})
#define HOLD	((struct act){A_HOLD, 0})
#define STOP	((struct act){A_STOP, 0})

#define NBUCKET 256

struct eng {
	const struct replay_opts *o;
	const struct rec *rec;
	const struct rec_meta *meta;
	struct replay__model *model;
	struct replay_result *res;
	int nfd, sfd;
	pid_t root;
	struct proc *root_proc;
	bool root_done, killed;
	struct task *tasks[NBUCKET];
	int ntasks;
	struct proc *procs;
	struct held *held;
	bool sched; /* multi-task: release one task at a time (struct pend) */
	struct pend *pends;
	struct task *inflight; /* the task running user code, NULL when none */
	bool deferred;	       /* release_next waits for a task due earlier to reach its call */
	uint64_t deferred_since;
	uint64_t vnow, shift;
	double scale;
	uint64_t *inj_seen;
	uint64_t rng;
	bool *ep_used;
	char **argv; /* the command line run (owned array, borrowed strings) */
	bool stop;
	uint8_t *buf;
	size_t buflen; /* bytes of the last output gathered into buf */
	bool buf_cut;
};

static void note(struct eng *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(struct eng *e, const char *fmt, ...)
{
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	buf_printf(&e->res->notes, "%s\n", m);
	if (e->o->verbose)
		fprintf(stderr, "kprobe replay: %s\n", m);
}

static struct task *task_find(struct eng *e, pid_t tid)
{
	for (struct task *t = e->tasks[(uint32_t)tid % NBUCKET]; t; t = t->hnext)
		if (t->tid == tid)
			return t;
	return NULL;
}

/*
 * The thread's next recorded call, past the dynamic loader's calls: those belong to the machine
 * the recording was made on (its library cache, its libraries) and are made for real here.
 */
static const struct kp_cap_rec *next_rec(struct eng *e, struct task *t)
{
	const struct kp_cap_rec *c;
	while ((c = rec_call(e->rec, t->rt, t->cur)) && (c->flags & KP_CAP_F_LOADER))
		t->cur++;
	return c;
}

static struct task *task_new(struct eng *e, pid_t tid)
{
	struct task *t = xcalloc(1, sizeof(*t));
	t->tid = tid;
	t->rt = -1;
	t->hnext = e->tasks[(uint32_t)tid % NBUCKET];
	e->tasks[(uint32_t)tid % NBUCKET] = t;
	e->ntasks++;
	return t;
}

static void proc_put(struct eng *e, struct proc *p);

static void task_del(struct eng *e, struct task *t)
{
	struct task **pp = &e->tasks[(uint32_t)t->tid % NBUCKET];
	while (*pp && *pp != t)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = t->hnext;
	e->ntasks--;
	if (e->inflight == t)
		e->inflight = NULL;
	for (struct pend **pp = &e->pends; *pp;) {
		if ((*pp)->t == t) {
			struct pend *x = *pp;
			*pp = x->next;
			free(x);
		} else {
			pp = &(*pp)->next;
		}
	}
	/* a held call of this task will never be answered */
	for (struct held **h = &e->held; *h;) {
		if ((pid_t)(*h)->req.pid == t->tid) {
			struct held *x = *h;
			*h = x->next;
			free(x);
		} else {
			h = &(*h)->next;
		}
	}
	if (t->proc)
		proc_put(e, t->proc);
	free(t);
}

static void rsock_put(struct rsock *r)
{
	if (r && --r->refs == 0)
		free(r);
}

static void fdm_clear(struct fdm *f)
{
	if (f->sup >= 0)
		close(f->sup);
	rsock_put(f->rs);
	memset(f, 0, sizeof(*f));
	f->sup = -1;
}

static struct fdm *fdm_get(struct proc *p, long fd)
{
	if (fd < 0 || fd >= MAX_FDS)
		return NULL;
	if (fd >= p->nfds) {
		int n = p->nfds ? p->nfds : 16;
		while (n <= fd)
			n *= 2;
		p->fds = xrealloc(p->fds, sizeof(*p->fds) * (size_t)n);
		for (int i = p->nfds; i < n; i++) {
			memset(&p->fds[i], 0, sizeof(p->fds[i]));
			p->fds[i].sup = -1;
		}
		p->nfds = n;
	}
	return &p->fds[fd];
}

/* Copies fd model entry a to b within (or across, after fork) processes. */
static void fdm_copy(struct fdm *dst, const struct fdm *src)
{
	fdm_clear(dst);
	*dst = *src;
	dst->sup = src->sup >= 0 ? fcntl(src->sup, F_DUPFD_CLOEXEC, 0) : -1;
	if (dst->rs)
		dst->rs->refs++;
}

static struct proc *proc_new(struct eng *e, pid_t tgid)
{
	struct proc *p = xcalloc(1, sizeof(*p));
	p->tgid = tgid;
	p->memfd = -1;
	p->pidfd = -1;
	p->refs = 1;
	p->next = e->procs;
	e->procs = p;
	return p;
}

static void proc_put(struct eng *e, struct proc *p)
{
	if (--p->refs > 0)
		return;
	struct proc **pp = &e->procs;
	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
	for (int i = 0; i < p->nfds; i++)
		fdm_clear(&p->fds[i]);
	free(p->fds);
	if (p->memfd >= 0)
		close(p->memfd);
	if (p->pidfd >= 0)
		close(p->pidfd);
	if (p == e->root_proc)
		e->root_proc = NULL;
	free(p);
}

#define MEMFD_NONE (-2) /* /proc/PID/mem could not be opened: process_vm_* only */

/*
 * The process's /proc/PID/mem, opened once (and again after exec); < 0 when unavailable.
 * KPROBE_REPLAY_NO_PROCMEM=1 acts as if it could not be opened (tests the fallback).
 */
static int proc_mem(struct proc *p)
{
	if (p->memfd == -1) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/mem", p->tgid);
		const char *no = getenv("KPROBE_REPLAY_NO_PROCMEM");
		if (no && *no == '1') {
			errno = EACCES;
			p->memfd = -1;
		} else {
			p->memfd = open(path, O_RDWR | O_CLOEXEC);
		}
		if (p->memfd < 0)
			p->memfd = MEMFD_NONE; /* do not retry on every call */
	}
	return p->memfd;
}

/*
 * Tracee memory, n bytes at addr: pread/pwrite on /proc/PID/mem (the faster way here), else
 * process_vm_readv/writev on the thread. The second way is tried only when the first fails, so
 * the hot path stays one system call; a bad address costs two and answers -EFAULT.
 */
static int mem_rw(struct task *t, uint64_t addr, void *buf, size_t n, bool wr)
{
	if (!n)
		return 0;
	if (!addr)
		return -EFAULT;
	int fd = proc_mem(t->proc);
	if (fd >= 0) {
		ssize_t r = wr ? pwrite(fd, buf, n, (off_t)addr) : pread(fd, buf, n, (off_t)addr);
		if (r == (ssize_t)n)
			return 0;
	}
	struct iovec l = {buf, n}, rv = {(void *)(uintptr_t)addr, n};
	ssize_t r = wr ? process_vm_writev(t->tid, &l, 1, &rv, 1, 0)
		       : process_vm_readv(t->tid, &l, 1, &rv, 1, 0);
	return r == (ssize_t)n ? 0 : -EFAULT;
}

static int mem_read(struct task *t, uint64_t addr, void *buf, size_t n)
{
	return mem_rw(t, addr, buf, n, false);
}

static int mem_write(struct task *t, uint64_t addr, const void *buf, size_t n)
{
	return mem_rw(t, addr, (void *)(uintptr_t)buf, n, true);
}

/* A NUL-terminated string from the tracee (a path); -EFAULT / -ENAMETOOLONG. */
static int mem_str(struct task *t, uint64_t addr, char *out, size_t cap)
{
	size_t got = 0;
	while (got < cap) {
		size_t chunk = 4096 - ((addr + got) & 4095);
		if (chunk > cap - got)
			chunk = cap - got;
		if (mem_read(t, addr + got, out + got, chunk) < 0)
			return -EFAULT;
		if (memchr(out + got, 0, chunk))
			return 0;
		got += chunk;
	}
	return -ENAMETOOLONG;
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Renders bytes for a report: printable as is, the rest escaped, cut at 80 bytes. */
static void esc(struct kp_buf *b, const uint8_t *p, size_t n)
{
	buf_puts(b, "\"");
	for (size_t i = 0; i < n && i < 80; i++) {
		uint8_t c = p[i];
		if (c == '\n')
			buf_puts(b, "\\n");
		else if (c == '\r')
			buf_puts(b, "\\r");
		else if (c == '\t')
			buf_puts(b, "\\t");
		else if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c >= 32 && c < 127)
			buf_printf(b, "%c", c);
		else
			buf_printf(b, "\\x%02x", c);
	}
	buf_puts(b, n > 80 ? "\"..." : "\"");
}

static const char *tname(struct task *t)
{
	static char b[64];
	snprintf(b, sizeof(b), "thread %d", t->tid);
	return b;
}

/* Stops the replay: report written by the caller. */
static struct act fail_stop(struct eng *e, struct task *t, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static struct act fail_stop(struct eng *e, struct task *t, const char *fmt, ...)
{
	char m[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m, sizeof(m), fmt, ap);
	va_end(ap);
	buf_printf(&e->res->report, "replay stopped in %s: %s\n", tname(t), m);
	e->res->failed = true;
	e->stop = true;
	return STOP;
}

/* ================================================================== time */

/* Recorded CLOCK_MONOTONIC -> virtual CLOCK_MONOTONIC (scale and injected delays applied). */
static uint64_t vmap(struct eng *e, uint64_t t)
{
	uint64_t b = e->meta->mono_base;
	if (t < b)
		return t + e->shift;
	return b + (uint64_t)((double)(t - b) * e->scale) + e->shift;
}

/* Virtual -> recorded (inverse of vmap). */
static uint64_t vunmap(struct eng *e, uint64_t v)
{
	uint64_t b = e->meta->mono_base;
	if (v < b + e->shift)
		return b;
	return b + (uint64_t)((double)(v - b - e->shift) / e->scale);
}

static void vnow_at_least(struct eng *e, uint64_t v)
{
	if (v > e->vnow)
		e->vnow = v;
}

/* Offset of clock `id` from CLOCK_MONOTONIC in the recording; false for CPU-time clocks. */
static bool clock_offset(struct eng *e, int64_t id, int64_t *off)
{
	switch (id) {
	case CLOCK_REALTIME:
	case CLOCK_REALTIME_COARSE:
	case CLOCK_TAI:
		*off = (int64_t)(e->meta->real_base - e->meta->mono_base);
		return true;
	case CLOCK_MONOTONIC:
	case CLOCK_MONOTONIC_RAW:
	case CLOCK_MONOTONIC_COARSE:
		*off = 0;
		return true;
	case CLOCK_BOOTTIME:
	case CLOCK_BOOTTIME_ALARM:
		*off = (int64_t)(e->meta->boot_base - e->meta->mono_base);
		return true;
	}
	return false;
}

static void ns_to_ts(uint64_t ns, int64_t ts[2])
{
	ts[0] = (int64_t)(ns / NSEC_PER_SEC);
	ts[1] = (int64_t)(ns % NSEC_PER_SEC);
}

/* Answers a clock read that the recording did not see (a vDSO read) from virtual time. */
static struct act synth_time(struct eng *e, struct task *t, const struct seccomp_notif *req)
{
	const __u64 *a = req->data.args;
	e->vnow += SYNTH_STEP_NS;
	e->res->synthesized++;
	int64_t off = 0, ts[2];
	switch (req->data.nr) {
	case SYS_clock_gettime:
		if ((int64_t)a[0] < 0)
			return CONT; /* a process or thread CPU clock by pid: real */
		if (!clock_offset(e, (int64_t)a[0], &off))
			off = -(int64_t)e->meta->mono_base; /* CPU time: time since the start */
		ns_to_ts((uint64_t)((int64_t)e->vnow + off), ts);
		return mem_write(t, a[1], ts, 16) ? ERR(EFAULT) : VAL(0);
	case SYS_gettimeofday:
		clock_offset(e, CLOCK_REALTIME, &off);
		ns_to_ts((uint64_t)((int64_t)e->vnow + off), ts);
		ts[1] /= 1000;
		if (a[0] && mem_write(t, a[0], ts, 16))
			return ERR(EFAULT);
		return VAL(0);
	case SYS_time: {
		clock_offset(e, CLOCK_REALTIME, &off);
		int64_t s = ((int64_t)e->vnow + off) / (int64_t)NSEC_PER_SEC;
		if (a[0] && mem_write(t, a[0], &s, 8))
			return ERR(EFAULT);
		return VAL(s);
	}
	}
	return CONT;
}

/* A recorded clock value, moved to virtual time (identity without scale or delays). */
static uint64_t clock_map(struct eng *e, int64_t id, uint64_t ns)
{
	int64_t off;
	if (!clock_offset(e, id, &off))
		return ns;
	return (uint64_t)((int64_t)vmap(e, (uint64_t)((int64_t)ns - off)) + off);
}

/* Reads a timeout argument as ns; NONE_T for "forever". */
static int timeout_of(struct task *t, const struct seccomp_notif *req, uint64_t *out)
{
	const __u64 *a = req->data.args;
	int64_t ts[2];
	*out = NONE_T;
	switch (req->data.nr) {
	case SYS_poll:
		if ((int)a[2] >= 0)
			*out = (uint64_t)(int)a[2] * NSEC_PER_MSEC;
		return 0;
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
		if ((int)a[3] >= 0)
			*out = (uint64_t)(int)a[3] * NSEC_PER_MSEC;
		return 0;
	case SYS_select:
		if (!a[4])
			return 0;
		if (mem_read(t, a[4], ts, 16))
			return -EFAULT;
		*out = (uint64_t)ts[0] * NSEC_PER_SEC + (uint64_t)ts[1] * 1000;
		return 0;
	case SYS_ppoll:
	case SYS_pselect6:
	case 441: /* epoll_pwait2 */ {
		uint64_t p = req->data.nr == SYS_ppoll	    ? a[2]
			     : req->data.nr == SYS_pselect6 ? a[4]
							    : a[3];
		if (!p)
			return 0;
		if (mem_read(t, p, ts, 16))
			return -EFAULT;
		*out = (uint64_t)ts[0] * NSEC_PER_SEC + (uint64_t)ts[1];
		return 0;
	}
	}
	return 0;
}

/* ================================================================== gathering and scattering */

struct iov {
	uint64_t base, len;
};

/* The iovec array of the call (readv/writev/msg), at most 1024 entries. */
static int iov_get(struct task *t, const struct seccomp_notif *req, const struct sysc *s,
		   struct iov *v, int *n, uint64_t *msg_addr)
{
	const __u64 *a = req->data.args;
	uint64_t base, cnt;
	*msg_addr = 0;
	if (s->cap.pay == KP_PAY_MSG) {
		uint64_t m[7];
		if (mem_read(t, a[1], m, sizeof(m)))
			return -EFAULT;
		*msg_addr = a[1];
		base = m[2];
		cnt = m[3];
	} else if (s->cap.pay == KP_PAY_IOV) {
		base = a[1];
		cnt = a[2];
	} else {
		v[0].base = a[s->cap.pay_arg];
		v[0].len = a[s->cap.pay_arg + 1 < 6 ? s->cap.pay_arg + 1 : 5];
		if (req->data.nr == SYS_getrandom || req->data.nr == SYS_getcwd ||
		    req->data.nr == SYS_sched_getaffinity)
			v[0].len = a[1];
		*n = 1;
		return 0;
	}
	if (cnt > 1024)
		return -EINVAL;
	*n = (int)cnt;
	return cnt ? mem_read(t, base, v, sizeof(*v) * cnt) : 0;
}

static uint64_t iov_total(const struct iov *v, int n)
{
	uint64_t s = 0;
	for (int i = 0; i < n; i++)
		s += v[i].len;
	return s;
}

static int scatter(struct task *t, const struct iov *v, int n, const uint8_t *p, uint64_t len)
{
	for (int i = 0; i < n && len; i++) {
		uint64_t k = KP_MIN(len, v[i].len);
		if (mem_write(t, v[i].base, p, k))
			return -EFAULT;
		p += k;
		len -= k;
	}
	return 0;
}

/* Reads the bytes an output call writes into e->buf (up to SCRATCH); returns the call's length. */
static int64_t gather(struct eng *e, struct task *t, const struct seccomp_notif *req,
		      const struct sysc *s)
{
	struct iov v[1024];
	int n = 0;
	uint64_t msg;
	e->buflen = 0;
	e->buf_cut = false;
	if (iov_get(t, req, s, v, &n, &msg))
		return -EFAULT;
	if (s->cap.pay == KP_PAY_BUF)
		v[0].len = req->data.args[2];
	uint64_t total = iov_total(v, n);
	for (int i = 0; i < n && e->buflen < SCRATCH; i++) {
		uint64_t k = KP_MIN(v[i].len, (uint64_t)(SCRATCH - e->buflen));
		if (mem_read(t, v[i].base, e->buf + e->buflen, k))
			return -EFAULT;
		e->buflen += k;
	}
	e->buf_cut = total > e->buflen;
	return (int64_t)total;
}

static void capture_stdout(struct eng *e, struct fdm *f)
{
	if (!f || f->kind != FK_EXT || f->ext != 1)
		return;
	size_t room = OUT_CAP - KP_MIN(e->res->out.len, (size_t)OUT_CAP);
	buf_append(&e->res->out, e->buf, KP_MIN(room, e->buflen));
	if (room < e->buflen || e->buf_cut)
		e->res->out_cut = true;
}

static bool fd_real(struct fdm *f)
{
	return !f || f->kind == FK_NONE || f->kind == FK_EXT || f->kind == FK_FILE;
}

/* ================================================================== creating objects */

static int addfd(struct eng *e, const struct seccomp_notif *req, int src, int newfd, bool cloexec,
		 bool send)
{
	struct seccomp_notif_addfd a = {
		.id = req->id,
		.flags = (newfd >= 0 ? SECCOMP_ADDFD_FLAG_SETFD : 0) |
			 (send ? SECCOMP_ADDFD_FLAG_SEND : 0),
		.srcfd = (__u32)src,
		.newfd = newfd >= 0 ? (__u32)newfd : 0,
		.newfd_flags = cloexec ? O_CLOEXEC : 0,
	};
	/*
	 * The ioctl sleeps until the target has installed the fd. A signal (the kicker's) may
	 * interrupt it; the kernel has then either completed the request (and says so) or withdrawn
	 * it, and asking again is right. Not with SECCOMP_ADDFD_FLAG_SEND: that marks the
	 * notification answered before the wait, so after an interruption the retry fails
	 * (EINPROGRESS) and the target's call returns 0. The answer is sent separately instead.
	 */
	int r;
	do
		r = ioctl(e->nfd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* Opens a path as the tracee would (its cwd, its dirfd, /proc/self meaning the tracee). */
static int sup_open(struct task *t, int dirfd, const char *path, int flags, mode_t mode)
{
	char full[PATH_MAX + 64];
	pid_t pid = t->proc->tgid;
	if (!strncmp(path, "/proc/self/", 11) || !strcmp(path, "/proc/self"))
		snprintf(full, sizeof(full), "/proc/%d%s", pid, path + 10);
	else if (!strncmp(path, "/proc/thread-self", 17))
		snprintf(full, sizeof(full), "/proc/%d/task/%d%s", pid, t->tid, path + 17);
	else if (path[0] == '/')
		snprintf(full, sizeof(full), "%s", path);
	else if (dirfd == AT_FDCWD)
		snprintf(full, sizeof(full), "/proc/%d/cwd/%s", pid, path);
	else
		snprintf(full, sizeof(full), "/proc/%d/fd/%d/%s", pid, dirfd, path);
	struct stat st;
	if (stat(full, &st) == 0 && S_ISFIFO(st.st_mode))
		return -ENXIO; /* opening a FIFO here could block: a placeholder instead */
	int fd;
	do /* the kicker's signal may interrupt an open of a slow device */
		fd = open(full, (flags & ~O_CLOEXEC) | O_CLOEXEC | O_NOCTTY, mode);
	while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

static int open_flags(const struct seccomp_notif *req, mode_t *mode)
{
	const __u64 *a = req->data.args;
	switch (req->data.nr) {
	case SYS_open:
		*mode = (mode_t)a[2];
		return (int)a[1];
	case SYS_creat:
		*mode = (mode_t)a[1];
		return O_CREAT | O_WRONLY | O_TRUNC;
	default: /* openat */
		*mode = (mode_t)a[3];
		return (int)a[2];
	}
}

static uint64_t path_arg(const struct seccomp_notif *req)
{
	return req->data.nr == SYS_openat ? req->data.args[1] : req->data.args[0];
}

/*
 * Creates the object behind a new fd and installs it in the tracee: at the recorded number when
 * c is given, else at the lowest free one. Returns the answer (the fd number, or an error).
 */
static struct act newfd_install(struct eng *e, struct task *t, const struct seccomp_notif *req,
				const struct kp_cap_rec *c)
{
	const __u64 *a = req->data.args;
	struct proc *p = t->proc;
	int nr = req->data.nr, obj = -1, want = c ? (int)c->ret : -1;
	enum fkind kind = FK_OTHER;
	bool cloexec = false, keep = false;
	struct rsock *rs = NULL;
	char path[PATH_MAX];
	switch (nr) {
	case SYS_open:
	case SYS_openat:
	case SYS_creat: {
		mode_t mode;
		int fl = open_flags(req, &mode);
		if (mem_str(t, path_arg(req), path, sizeof(path)))
			return ERR(EFAULT);
		cloexec = fl & O_CLOEXEC;
		obj = sup_open(t, nr == SYS_openat ? (int)a[0] : AT_FDCWD, path, fl, mode);
		if (obj >= 0) {
			kind = FK_FILE;
			keep = true;
		} else if (c) {
			/* gone since the recording: a placeholder, every read is served */
			note(e, "%s: %s cannot be opened here (%s): replaying its recorded contents",
			     tname(t), path, strerror(-obj));
			obj = memfd_create("kprobe-replay-placeholder", MFD_CLOEXEC);
			kind = FK_VFILE;
		} else {
			return ERR(-obj);
		}
		break;
	}
	case SYS_socket:
		obj = socket((int)a[0], (int)a[1] | SOCK_CLOEXEC, (int)a[2]);
		cloexec = a[1] & SOCK_CLOEXEC;
		kind = FK_SOCK;
		keep = true;
		break;
	case SYS_accept:
	case SYS_accept4: {
		struct kp_cap_sock k;
		int fam = c && kp_cap_sock_get(c, &k) ? k.family : AF_INET;
		int fl = nr == SYS_accept4 ? (int)a[3] : 0;
		obj = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | (fl & SOCK_NONBLOCK), 0);
		cloexec = fl & SOCK_CLOEXEC;
		kind = FK_SOCK;
		keep = true;
		break;
	}
	case SYS_pipe:
	case SYS_pipe2:
	case SYS_socketpair: {
		int pr[2], rfd[2] = {-1, -1};
		int r;
		if (nr == SYS_socketpair) {
			r = socketpair((int)a[0], (int)a[1] | SOCK_CLOEXEC, (int)a[2], pr);
			cloexec = a[1] & SOCK_CLOEXEC;
		} else {
			int fl = nr == SYS_pipe2 ? (int)a[1] : 0;
			r = pipe2(pr, (fl & ~O_CLOEXEC) | O_CLOEXEC);
			cloexec = fl & O_CLOEXEC;
		}
		if (r < 0)
			return ERR(errno);
		if (c && c->aux_len >= 8)
			memcpy(rfd, kp_cap_aux(c), 8);
		for (int i = 0; i < 2; i++) {
			rfd[i] = addfd(e, req, pr[i], c ? rfd[i] : -1, cloexec, false);
			close(pr[i]);
		}
		if (rfd[0] < 0 || rfd[1] < 0)
			return ERR(EMFILE);
		for (int i = 0; i < 2; i++) {
			struct fdm *f = fdm_get(p, rfd[i]);
			if (f) {
				fdm_clear(f);
				f->kind = FK_PIPE;
			}
		}
		uint64_t dst = nr == SYS_socketpair ? a[3] : a[0];
		return mem_write(t, dst, rfd, 8) ? ERR(EFAULT) : VAL(0);
	}
	case SYS_eventfd:
	case SYS_eventfd2:
		obj = eventfd((unsigned)a[0], nr == SYS_eventfd2
						      ? ((int)a[1] & ~EFD_CLOEXEC) | EFD_CLOEXEC
						      : EFD_CLOEXEC);
		cloexec = nr == SYS_eventfd2 && (a[1] & EFD_CLOEXEC);
		break;
	case SYS_epoll_create:
	case SYS_epoll_create1:
		obj = epoll_create1(EPOLL_CLOEXEC);
		cloexec = nr == SYS_epoll_create1 && (a[0] & EPOLL_CLOEXEC);
		break;
	case SYS_timerfd_create:
		obj = timerfd_create((int)a[0], ((int)a[1] & ~TFD_CLOEXEC) | TFD_CLOEXEC);
		cloexec = a[1] & TFD_CLOEXEC;
		break;
	case SYS_inotify_init1:
		obj = inotify_init1(((int)a[0] & ~IN_CLOEXEC) | IN_CLOEXEC);
		cloexec = a[0] & IN_CLOEXEC;
		break;
	case SYS_signalfd4: {
		if ((int)a[0] != -1)
			return CONT; /* changes an existing signalfd */
		sigset_t m;
		sigemptyset(&m);
		if (mem_read(t, a[1], &m, KP_MIN(a[2], sizeof(m))))
			return ERR(EFAULT);
		obj = signalfd(-1, &m, ((int)a[3] & ~SFD_CLOEXEC) | SFD_CLOEXEC);
		cloexec = a[3] & SFD_CLOEXEC;
		break;
	}
	case SYS_memfd_create:
		if (mem_str(t, a[0], path, 256))
			return ERR(EFAULT);
		obj = memfd_create(path, ((unsigned)a[1] & ~MFD_CLOEXEC) | MFD_CLOEXEC);
		cloexec = a[1] & MFD_CLOEXEC;
		kind = FK_FILE;
		keep = true;
		break;
	default:
		return CONT;
	}
	if (obj < 0)
		return ERR(errno);
	int fd = addfd(e, req, obj, want, cloexec, false);
	if (fd < 0) {
		close(obj);
		/* the tracee died meanwhile, or its fd table is full */
		return ERR(-fd);
	}
	struct fdm *f = fdm_get(p, fd);
	if (!f) {
		close(obj);
		return VAL(fd);
	}
	fdm_clear(f);
	f->kind = (uint8_t)kind;
	if (kind == FK_SOCK) {
		rs = xcalloc(1, sizeof(*rs));
		rs->refs = 1;
		rs->ep = -1;
		f->rs = rs;
		struct kp_cap_sock k;
		if (c && kp_cap_sock_get(c, &k) && k.dport) {
			rs->ep = replay__model_find(e->model, &k);
			if (rs->ep >= 0)
				e->ep_used[rs->ep] = true;
		}
	}
	if (keep) {
		struct stat st;
		f->sup = obj;
		f->seekable = kind == FK_FILE && fstat(obj, &st) == 0 && S_ISREG(st.st_mode);
	} else {
		close(obj);
	}
	return VAL(fd);
}

/* ================================================================== recorded answers */

/* Serves read-family calls from a record's payload (and aux). */
static struct act serve_in(struct eng *e, struct task *t, const struct seccomp_notif *req,
			   const struct kp_cap_rec *c, const struct sysc *s)
{
	const __u64 *a = req->data.args;
	int nr = req->data.nr;
	if (c->ret < 0)
		return ERR(-c->ret);
	struct fdm *f = (s->cap.flags & KP_CAPD_FD) ? fdm_get(t->proc, (int)a[0]) : NULL;
	if (nr == SYS_lseek) {
		if (f && f->seekable)
			lseek(f->sup, c->ret, SEEK_SET);
		return VAL(c->ret);
	}
	if (s->cap.pay == KP_PAY_NONE)
		return VAL(c->ret);
	uint64_t len = (uint64_t)c->ret;
	const uint8_t *data = kp_cap_payload(c);
	if (len > c->payload_len) {
		/* cut at capture: the real file gives the rest if it still starts as recorded */
		if (nr == SYS_getdents64 && f && f->kind == FK_FILE) {
			note(e,
			     "%s: getdents64 of a directory larger than the recording kept: read "
			     "for real",
			     tname(t));
			return CONT;
		}
		if (f && f->seekable && nr != SYS_getdents64) {
			off_t at = nr == SYS_pread64 || nr == SYS_preadv || nr == SYS_preadv2
					   ? (off_t)a[3]
					   : lseek(f->sup, 0, SEEK_CUR);
			ssize_t r = pread(f->sup, e->buf, c->payload_len, at);
			if (r == (ssize_t)c->payload_len && !memcmp(e->buf, data, c->payload_len))
				return CONT; /* offsets are in step: the real read reads the same */
			return fail_stop(e, t,
					 "%s: the recording kept %u of %" PRIu64 " bytes and the "
					 "file no longer starts as recorded",
					 s->name, c->payload_len, len);
		}
		return fail_stop(e, t,
				 "%s returned %" PRIu64 " bytes but the recording kept %u "
				 "(record again with a larger kprobe record --max-bytes, or "
				 "replay.capture.maxBytes for the agent)",
				 s->name, len, c->payload_len);
	}
	struct iov v[1024];
	int n = 0;
	uint64_t msg;
	if (iov_get(t, req, s, v, &n, &msg) || scatter(t, v, n, data, len))
		return ERR(EFAULT);
	if (nr == SYS_recvfrom && a[4] && a[5] && c->aux_len >= 4) {
		uint32_t al;
		memcpy(&al, kp_cap_aux(c), 4);
		uint32_t have = KP_MIN(al, (uint32_t)(c->aux_len - 4));
		mem_write(t, a[4], kp_cap_aux(c) + 4, have);
		mem_write(t, a[5], &al, 4);
	}
	if (nr == SYS_recvmsg && msg && c->aux_len >= 16) {
		const uint8_t *x = kp_cap_aux(c);
		uint32_t nl, fl, cl;
		memcpy(&nl, x, 4);
		memcpy(&fl, x + 4, 4);
		memcpy(&cl, x + 8, 4);
		uint64_t m[7];
		if (!mem_read(t, msg, m, sizeof(m))) {
			if (m[0] && nl)
				mem_write(t, m[0], x + 16, KP_MIN(nl, (uint32_t)m[1]));
			uint32_t nl32 = nl;
			mem_write(t, msg + 8, &nl32, 4);
			if (m[4] && cl && 16 + nl + cl <= c->aux_len)
				mem_write(t, m[4], x + 16 + nl, KP_MIN((uint64_t)cl, m[5]));
			uint64_t cl64 = cl;
			mem_write(t, msg + 40, &cl64, 8);
			mem_write(t, msg + 48, &fl, 4);
		}
	}
	if (f && f->seekable && (nr == SYS_read || nr == SYS_readv))
		lseek(f->sup, (off_t)len, SEEK_CUR);
	if (f && f->rs)
		f->rs->off += len;
	return VAL(c->ret);
}

/* Serves calls answered with a structure (stat, uname, getsockopt, ioctl, ...). */
static struct act serve_stat(struct eng *e, struct task *t, const struct seccomp_notif *req,
			     const struct kp_cap_rec *c, const struct sysc *s)
{
	const __u64 *a = req->data.args;
	if (c->ret < 0)
		return ERR(-c->ret);
	const uint8_t *x = kp_cap_aux(c);
	switch (s->cap.aux) {
	case KP_AUX_FIXED:
		if (c->aux_len && mem_write(t, a[s->cap.aux_arg], x, c->aux_len))
			return ERR(EFAULT);
		break;
	case KP_AUX_IOCTL:
		if (c->aux_len && mem_write(t, a[2], x, c->aux_len))
			return ERR(EFAULT);
		break;
	case KP_AUX_SOCKADDR:
	case KP_AUX_SOCKOPT: {
		uint64_t vp = s->cap.aux == KP_AUX_SOCKOPT ? a[3] : a[s->cap.aux_arg];
		uint64_t lp = s->cap.aux == KP_AUX_SOCKOPT ? a[4] : a[s->cap.aux_arg + 1];
		if (c->aux_len < 4)
			break;
		uint32_t len, cap = 0;
		memcpy(&len, x, 4);
		if (lp && mem_read(t, lp, &cap, 4))
			return ERR(EFAULT);
		uint32_t k = KP_MIN(KP_MIN(len, cap), (uint32_t)(c->aux_len - 4));
		if ((vp && mem_write(t, vp, x + 4, k)) || (lp && mem_write(t, lp, &len, 4)))
			return ERR(EFAULT);
		break;
	}
	default:
		break;
	}
	(void)e;
	return VAL(c->ret);
}

static struct act serve_wait_rec(struct eng *e, struct task *t, const struct seccomp_notif *req,
				 const struct kp_cap_rec *c)
{
	const __u64 *a = req->data.args;
	const uint8_t *x = kp_cap_aux(c);
	(void)e;
	if (c->ret < 0)
		return ERR(-c->ret);
	switch (req->data.nr) {
	case SYS_poll:
	case SYS_ppoll:
		if (c->aux_len && mem_write(t, a[0], x, KP_MIN((uint64_t)c->aux_len, a[1] * 8)))
			return ERR(EFAULT);
		break;
	case SYS_select:
	case SYS_pselect6: {
		if (c->aux_len < 4)
			break;
		uint32_t sl;
		memcpy(&sl, x, 4);
		if (4 + 3 * (uint64_t)sl + 16 > c->aux_len)
			break;
		for (int i = 0; i < 3; i++)
			if (a[1 + i] && mem_write(t, a[1 + i], x + 4 + i * sl, sl))
				return ERR(EFAULT);
		if (a[4])
			mem_write(t, a[4], x + 4 + 3 * sl, 16);
		break;
	}
	default: /* epoll */
		if (c->aux_len && mem_write(t, a[1], x, c->aux_len))
			return ERR(EFAULT);
		break;
	}
	return VAL(c->ret);
}

static struct act serve_time_rec(struct eng *e, struct task *t, const struct seccomp_notif *req,
				 const struct kp_cap_rec *c)
{
	const __u64 *a = req->data.args;
	if (c->ret < 0)
		return ERR(-c->ret);
	int64_t ts[2] = {0, 0};
	if (c->aux_len >= 8)
		memcpy(ts, kp_cap_aux(c), KP_MIN((size_t)c->aux_len, sizeof(ts)));
	switch (req->data.nr) {
	case SYS_clock_gettime: {
		uint64_t ns = (uint64_t)ts[0] * NSEC_PER_SEC + (uint64_t)ts[1];
		ns_to_ts(clock_map(e, (int64_t)a[0], ns), ts);
		return c->aux_len >= 16 && mem_write(t, a[1], ts, 16) ? ERR(EFAULT) : VAL(c->ret);
	}
	case SYS_gettimeofday: {
		uint64_t ns = (uint64_t)ts[0] * NSEC_PER_SEC + (uint64_t)ts[1] * 1000;
		ns_to_ts(clock_map(e, CLOCK_REALTIME, ns), ts);
		ts[1] /= 1000;
		return c->aux_len >= 16 && a[0] && mem_write(t, a[0], ts, 16) ? ERR(EFAULT)
									      : VAL(c->ret);
	}
	case SYS_time: {
		int64_t s =
			(int64_t)(clock_map(e, CLOCK_REALTIME, (uint64_t)c->ret * NSEC_PER_SEC) /
				  NSEC_PER_SEC);
		if (a[0])
			mem_write(t, a[0], &s, 8);
		return VAL(s);
	}
	}
	return VAL(c->ret);
}

/* ================================================================== model answers (off script) */

static bool nonblocking(struct fdm *f, const struct seccomp_notif *req)
{
	int nr = req->data.nr;
	if ((nr == SYS_recvfrom && (req->data.args[3] & MSG_DONTWAIT)) ||
	    (nr == SYS_recvmsg && (req->data.args[2] & MSG_DONTWAIT)))
		return true;
	if (f && f->sup >= 0) {
		int fl = fcntl(f->sup, F_GETFL);
		return fl >= 0 && (fl & O_NONBLOCK);
	}
	return false;
}

/* Reads from a recorded connection's timeline at virtual now (waiting in virtual time). */
static struct act model_read(struct eng *e, struct task *t, const struct seccomp_notif *req,
			     const struct sysc *s, struct fdm *f)
{
	struct rsock *rs = f->rs;
	const struct replay__ep *ep = &e->model->eps[rs->ep];
	struct iov v[1024];
	int n = 0;
	uint64_t msg;
	if (iov_get(t, req, s, v, &n, &msg))
		return ERR(EFAULT);
	if (s->cap.pay == KP_PAY_BUF)
		v[0].len = req->data.args[2];
	uint64_t want = iov_total(v, n);
	bool peek = (req->data.nr == SYS_recvfrom && (req->data.args[3] & MSG_PEEK));
	for (int guard = 0; guard < 1000000; guard++) {
		uint64_t T = vunmap(e, e->vnow);
		uint64_t avail = replay__model_avail(e->model, rs->ep, T);
		if (rs->off < avail) {
			uint64_t k = KP_MIN(want, avail - rs->off);
			k = KP_MIN(k, (uint64_t)SCRATCH);
			if (!replay__model_bytes(e->model, rs->ep, rs->off, k, e->buf))
				return fail_stop(e, t,
						 "%s on fd %d needs bytes %" PRIu64 "..%" PRIu64
						 " of the connection, which the recording did not "
						 "keep (raise replay.capture.maxBytes)",
						 s->name, (int)req->data.args[0], rs->off,
						 rs->off + k);
			if (scatter(t, v, n, e->buf, k))
				return ERR(EFAULT);
			if (!peek)
				rs->off += k;
			return VAL(k);
		}
		if (rs->off >= ep->in_total && ep->in_eof_t && T >= ep->in_eof_t)
			return VAL(0);
		if (nonblocking(f, req))
			return ERR(EAGAIN);
		uint64_t next = rs->off < ep->in_total
					? replay__model_arrival(e->model, rs->ep, rs->off)
					: (ep->in_eof_t ? ep->in_eof_t : NONE_T);
		if (next == NONE_T)
			return fail_stop(e, t,
					 "%s on fd %d waits for data past the end of the "
					 "recording (byte %" PRIu64
					 " of the connection): the recorded "
					 "world has nothing more to say",
					 s->name, (int)req->data.args[0], rs->off);
		uint64_t nv = vmap(e, next);
		e->vnow = nv > e->vnow ? nv : e->vnow + 1;
	}
	return fail_stop(e, t, "%s: no progress in the model", s->name);
}

/* Readiness of one fd in the model at recorded time T; *next: when that may change. */
static short fd_ready(struct eng *e, struct proc *p, int fd, short ev, uint64_t T, uint64_t *next)
{
	struct fdm *f = fdm_get(p, fd);
	*next = NONE_T;
	if (!f || f->kind == FK_NONE || f->kind == FK_EXT || f->kind == FK_FILE ||
	    f->kind == FK_VFILE)
		return ev & (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
	if (f->kind == FK_SOCK && f->rs && f->rs->ep >= 0) {
		const struct replay__ep *ep = &e->model->eps[f->rs->ep];
		short r = ev & (POLLOUT | POLLWRNORM);
		uint64_t off = f->rs->off;
		if (off < replay__model_avail(e->model, f->rs->ep, T))
			r |= ev & (POLLIN | POLLRDNORM);
		else if (off >= ep->in_total && ep->in_eof_t && T >= ep->in_eof_t)
			r |= (ev & (POLLIN | POLLRDNORM)) | POLLHUP;
		else if (ev & (POLLIN | POLLRDNORM))
			*next = off < ep->in_total ? replay__model_arrival(e->model, f->rs->ep, off)
						   : (ep->in_eof_t ? ep->in_eof_t : NONE_T);
		return r;
	}
	if (f->kind == FK_SOCK)
		return ev & (POLLOUT | POLLWRNORM);
	return 0; /* pipes, eventfds, ...: nothing arrives in the model */
}

struct wfd {
	int fd;
	short ev, rev;
	uint64_t data; /* epoll */
};

static int epoll_interest(struct task *t, int epfd, struct wfd *w, int max)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", t->proc->tgid, epfd);
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int n = 0;
	while (n < max && fgets(line, sizeof(line), f)) {
		int fd;
		unsigned ev;
		unsigned long long data;
		if (sscanf(line, "tfd: %d events: %x data: %llx", &fd, &ev, &data) == 3)
			w[n++] = (struct wfd){fd, (short)ev, 0, data};
	}
	fclose(f);
	return n;
}

static struct act model_wait(struct eng *e, struct task *t, const struct seccomp_notif *req)
{
	const __u64 *a = req->data.args;
	int nr = req->data.nr, n = 0;
	static struct wfd w[4096];
	static struct pollfd pf[4096];
	uint64_t sets[3][16];
	memset(sets, 0, sizeof(sets));
	switch (nr) {
	case SYS_poll:
	case SYS_ppoll:
		if (a[1] > 4096)
			return ERR(EINVAL);
		n = (int)a[1];
		if (n && mem_read(t, a[0], pf, sizeof(pf[0]) * (size_t)n))
			return ERR(EFAULT);
		for (int i = 0; i < n; i++)
			w[i] = (struct wfd){pf[i].fd, pf[i].events, 0, 0};
		break;
	case SYS_select:
	case SYS_pselect6: {
		int nfds = (int)a[0];
		if (nfds < 0 || nfds > 1024)
			return ERR(EINVAL);
		size_t sl = (size_t)(nfds + 63) / 64 * 8;
		for (int i = 0; i < 3; i++)
			if (a[1 + i] && mem_read(t, a[1 + i], sets[i], sl))
				return ERR(EFAULT);
		for (int fd = 0; fd < nfds; fd++) {
			short ev = 0;
			if (sets[0][fd / 64] >> (fd % 64) & 1)
				ev |= POLLIN;
			if (sets[1][fd / 64] >> (fd % 64) & 1)
				ev |= POLLOUT;
			if (ev)
				w[n++] = (struct wfd){fd, ev, 0, 0};
		}
		break;
	}
	default:
		n = epoll_interest(t, (int)a[0], w, 4096);
		if (n < 0)
			return ERR(EBADF);
		break;
	}
	uint64_t to;
	if (timeout_of(t, req, &to))
		return ERR(EFAULT);
	uint64_t start = e->vnow, deadline = to == NONE_T ? NONE_T : start + to;
	for (;;) {
		uint64_t T = vunmap(e, e->vnow), next = NONE_T;
		int ready = 0;
		for (int i = 0; i < n; i++) {
			uint64_t nx;
			w[i].rev = w[i].fd < 0 ? 0 : fd_ready(e, t->proc, w[i].fd, w[i].ev, T, &nx);
			if (w[i].fd >= 0 && nx < next)
				next = nx;
			if (w[i].rev)
				ready++;
		}
		if (ready || to == 0)
			break;
		uint64_t nv = next == NONE_T ? NONE_T : vmap(e, next);
		if (nv != NONE_T && nv <= deadline) {
			e->vnow = nv > e->vnow ? nv : e->vnow + 1;
			continue;
		}
		if (deadline == NONE_T)
			return fail_stop(e, t,
					 "%s waits forever: none of its %d fds gets anything more "
					 "in the recording",
					 sysc_name(nr), n);
		e->vnow = deadline;
		if (t->proc == e->root_proc && to > 0)
			snprintf(e->res->reason, sizeof(e->res->reason), "timeout");
		break;
	}
	int count = 0;
	switch (nr) {
	case SYS_poll:
	case SYS_ppoll:
		for (int i = 0; i < n; i++) {
			pf[i].revents = w[i].rev;
			count += w[i].rev != 0;
		}
		if (n && mem_write(t, a[0], pf, sizeof(pf[0]) * (size_t)n))
			return ERR(EFAULT);
		return VAL(count);
	case SYS_select:
	case SYS_pselect6: {
		size_t sl = (size_t)((int)a[0] + 63) / 64 * 8;
		uint64_t out[3][16];
		memset(out, 0, sizeof(out));
		for (int i = 0; i < n; i++) {
			if (w[i].rev & POLLIN) {
				out[0][w[i].fd / 64] |= 1ull << (w[i].fd % 64);
				count++;
			}
			if (w[i].rev & POLLOUT) {
				out[1][w[i].fd / 64] |= 1ull << (w[i].fd % 64);
				count++;
			}
		}
		for (int i = 0; i < 3; i++)
			if (a[1 + i] && mem_write(t, a[1 + i], out[i], sl))
				return ERR(EFAULT);
		return VAL(count);
	}
	default: {
		int max = (int)a[2];
		struct __attribute__((packed)) {
			uint32_t ev;
			uint64_t data;
		} evs[64];
		for (int i = 0; i < n && count < max && count < 64; i++)
			if (w[i].rev) {
				evs[count].ev = (uint32_t)(uint16_t)w[i].rev;
				evs[count].data = w[i].data;
				count++;
			}
		if (count && mem_write(t, a[1], evs, sizeof(evs[0]) * (size_t)count))
			return ERR(EFAULT);
		return VAL(count);
	}
	}
}

static struct act apply(struct eng *e, struct task *t, const struct seccomp_notif *req,
			const struct kp_cap_rec *c, const struct sysc *s);

/* Off script: the next recorded call of this thread with the same number (and fd/path). */
static const struct kp_cap_rec *lookahead(struct eng *e, struct task *t,
					  const struct seccomp_notif *req, const struct sysc *s)
{
	if (t->rt < 0)
		return NULL;
	char path[PATH_MAX];
	bool by_path = s->cap.pay == KP_PAY_STR;
	if (by_path && mem_str(t, req->data.args[s->cap.pay_arg], path, sizeof(path)))
		return NULL;
	for (uint32_t k = t->cur; k < t->cur + LOOKAHEAD_MAX; k++) {
		const struct kp_cap_rec *c = rec_call(e->rec, t->rt, k);
		if (!c)
			return NULL;
		if (c->nr != req->data.nr || (c->flags & KP_CAP_F_LOADER))
			continue;
		if ((s->cap.flags & KP_CAPD_FD) && (int)c->args[0] != (int)req->data.args[0])
			continue;
		if (by_path && strncmp((const char *)kp_cap_payload(c), path, c->payload_len))
			continue;
		t->cur = k;
		return c;
	}
	return NULL;
}

/* Same address? Only the bytes that mean something: stacks leave garbage after a unix path. */
static bool sockaddr_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	uint16_t fa, fb;
	if (al < 2 || bl < 2)
		return al == bl;
	memcpy(&fa, a, 2);
	memcpy(&fb, b, 2);
	if (fa != fb)
		return false;
	switch (fa) {
	case AF_INET:
		return al >= 8 && bl >= 8 && !memcmp(a + 2, b + 2, 6);
	case AF_INET6:
		return al >= 24 && bl >= 24 && !memcmp(a + 2, b + 2, 2) &&
		       !memcmp(a + 8, b + 8, 16);
	case AF_UNIX: {
		size_t n = KP_MIN(al, bl) - 2;
		if (al != bl &&
		    (memchr(a + 2, 0, al - 2) == NULL || memchr(b + 2, 0, bl - 2) == NULL))
			return false;
		return !strncmp((const char *)a + 2, (const char *)b + 2, n) &&
		       (a[2] || !memcmp(a + 2, b + 2, n)); /* abstract names compare whole */
	}
	}
	return al == bl && !memcmp(a, b, al);
}

static struct act model_connect(struct eng *e, struct task *t, const struct seccomp_notif *req,
				struct fdm *f)
{
	const __u64 *a = req->data.args;
	uint8_t sa[128] = {0};
	size_t sl = KP_MIN(a[2], sizeof(sa));
	if (mem_read(t, a[1], sa, sl))
		return ERR(EFAULT);
	uint16_t fam;
	memcpy(&fam, sa, 2);
	if (!f || f->kind != FK_SOCK || !f->rs)
		return ERR(ENOTSOCK);
	if (fam != AF_INET && fam != AF_INET6) {
		/* a local service: what the recording said about the same address, if anything */
		for (uint32_t k = t->cur; t->rt >= 0 && k < t->cur + LOOKAHEAD_MAX; k++) {
			const struct kp_cap_rec *c = rec_call(e->rec, t->rt, k);
			if (!c)
				break;
			if (c->nr == SYS_connect &&
			    sockaddr_eq(sa, sl, kp_cap_payload(c), c->payload_len)) {
				t->cur = k + 1;
				return c->ret < 0 ? ERR(-c->ret) : VAL(c->ret);
			}
		}
		struct stat st;
		if (fam == AF_UNIX && sa[2] && stat((const char *)sa + 2, &st) < 0)
			return ERR(ENOENT);
		return ERR(ECONNREFUSED);
	}
	uint16_t port = (uint16_t)(sa[2] << 8 | sa[3]);
	const uint8_t *addr = fam == AF_INET ? sa + 4 : sa + 8;
	size_t alen = fam == AF_INET ? 4 : 16;
	for (int i = 0; i < e->model->neps; i++) {
		const struct replay__ep *ep = &e->model->eps[i];
		if (e->ep_used[i] || ep->tuple.family != fam || ep->tuple.dport != port ||
		    memcmp(ep->tuple.daddr, addr, alen) ||
		    (t->proc->rtgid && ep->tgid != t->proc->rtgid))
			continue;
		e->ep_used[i] = true;
		f->rs->ep = i;
		f->rs->off = 0;
		vnow_at_least(e, vmap(e, ep->connect_t));
		return nonblocking(f, req) ? ERR(EINPROGRESS) : VAL(0);
	}
	note(e, "%s: connect to port %u is not in the recording: answered ECONNREFUSED", tname(t),
	     port);
	if (t->proc == e->root_proc)
		snprintf(e->res->reason, sizeof(e->res->reason), "ECONNREFUSED from connect");
	return ERR(ECONNREFUSED);
}

/* Lowest free fd >= min in the tracee (for dup/F_DUPFD off script). */
static int lowest_free(struct task *t, int min)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", t->proc->tgid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	static uint8_t used[MAX_FDS / 8];
	memset(used, 0, sizeof(used));
	struct dirent *de;
	while ((de = readdir(d))) {
		int fd = atoi(de->d_name);
		if (de->d_name[0] != '.' && fd >= 0 && fd < MAX_FDS)
			used[fd / 8] |= (uint8_t)(1 << (fd % 8));
	}
	closedir(d);
	for (int fd = min; fd < MAX_FDS; fd++)
		if (!(used[fd / 8] >> (fd % 8) & 1))
			return fd;
	return -1;
}

static struct act do_close(struct eng *e, struct task *t, const struct seccomp_notif *req)
{
	struct fdm *f = fdm_get(t->proc, (int)req->data.args[0]);
	if (f)
		fdm_clear(f);
	(void)e;
	return CONT;
}

static struct act do_dup(struct eng *e, struct task *t, const struct seccomp_notif *req,
			 const struct kp_cap_rec *c)
{
	const __u64 *a = req->data.args;
	int nr = req->data.nr, newfd;
	if (c && c->ret < 0)
		return ERR(-c->ret);
	if (c)
		newfd = (int)c->ret;
	else if (nr == SYS_dup2 || nr == SYS_dup3)
		newfd = (int)a[1];
	else
		newfd = lowest_free(t, nr == SYS_fcntl ? (int)a[2] : 0);
	struct fdm *src = fdm_get(t->proc, (int)a[0]), *dst = fdm_get(t->proc, newfd);
	if (src && dst && src != dst)
		fdm_copy(dst, src);
	(void)e;
	return CONT;
}

static const struct replay_inj *inject(struct eng *e, struct task *t,
				       const struct seccomp_notif *req, uint64_t *delay);

static struct act model_serve(struct eng *e, struct task *t, const struct seccomp_notif *req,
			      const struct sysc *s)
{
	const __u64 *a = req->data.args;
	int nr = req->data.nr;
	struct fdm *f = (s->cap.flags & KP_CAPD_FD) ? fdm_get(t->proc, (int)a[0]) : NULL;
	const struct kp_cap_rec *c;
	e->res->modeled++;
	/* injections apply off script too: a failure is answered as is; a delay makes the world
	 * later for calls that wait on it, and the call itself longer otherwise */
	uint64_t delay;
	const struct replay_inj *fail = inject(e, t, req, &delay);
	if (fail) {
		if (t->proc == e->root_proc && strerrorname_np(fail->err))
			snprintf(e->res->reason, sizeof(e->res->reason), "%s from %s",
				 strerrorname_np(fail->err), s->name);
		note(e, "%s: injected %s", tname(t), fail->spec);
		return ERR(fail->err);
	}
	if (delay) {
		note(e, "%s: %s delayed by %" PRIu64 " ms", tname(t), s->name,
		     (uint64_t)(delay / NSEC_PER_MSEC));
		if (s->kind == SK_WAIT || (f && f->rs && f->rs->ep >= 0))
			e->shift += delay;
		else
			e->vnow += delay;
	}
	switch (s->kind) {
	case SK_TIME:
		return synth_time(e, t, req);
	case SK_SLEEP: {
		int64_t ts[2];
		uint64_t p = nr == SYS_nanosleep ? a[0] : a[2];
		if (mem_read(t, p, ts, 16))
			return ERR(EFAULT);
		uint64_t d = (uint64_t)ts[0] * NSEC_PER_SEC + (uint64_t)ts[1];
		if (nr == SYS_clock_nanosleep && (a[1] & TIMER_ABSTIME)) {
			int64_t off = 0;
			clock_offset(e, (int64_t)a[0], &off);
			vnow_at_least(e, (uint64_t)((int64_t)d - off));
		} else {
			e->vnow += d;
		}
		return VAL(0);
	}
	case SK_WAIT:
		return model_wait(e, t, req);
	case SK_IN:
		if (nr == SYS_getrandom) {
			uint64_t n = KP_MIN(a[1], (uint64_t)SCRATCH);
			for (uint64_t i = 0; i < n; i += 8) {
				uint64_t r = splitmix(&e->rng);
				memcpy(e->buf + i, &r, KP_MIN(8, n - i));
			}
			return mem_write(t, a[0], e->buf, n) ? ERR(EFAULT) : VAL(n);
		}
		if (f && f->kind == FK_SOCK && f->rs && f->rs->ep >= 0 && nr != SYS_lseek)
			return model_read(e, t, req, s, f);
		if (f && f->kind == FK_FILE)
			return CONT; /* the real file, at the offset kept in step */
		if ((c = lookahead(e, t, req, s))) {
			struct act r = apply(e, t, req, c, s);
			return r;
		}
		if (f &&
		    (f->kind == FK_EXT || f->kind == FK_PIPE || f->kind == FK_VFILE ||
		     f->kind == FK_OTHER) &&
		    nr != SYS_lseek)
			return VAL(0);
		return CONT;
	case SK_STAT:
		if ((c = lookahead(e, t, req, s)))
			return apply(e, t, req, c, s);
		return CONT;
	case SK_OUT:
		if (fd_real(f)) {
			if (f && f->kind == FK_EXT && f->ext == 1 && gather(e, t, req, s) >= 0)
				capture_stdout(e, f);
			return CONT;
		}
		if (nr == SYS_fsync || nr == SYS_fdatasync || nr == SYS_ftruncate)
			return VAL(0);
		{
			int64_t n = gather(e, t, req, s);
			return n < 0 ? ERR(EFAULT) : VAL(n);
		}
	case SK_SOCKOP:
		return VAL(0);
	case SK_CONNECT:
		return model_connect(e, t, req, f);
	case SK_NEWFD:
		if ((nr == SYS_accept || nr == SYS_accept4) && (c = lookahead(e, t, req, s))) {
			vnow_at_least(e, vmap(e, c->ts_exit));
			t->cur++;
			if (c->ret < 0)
				return ERR(-c->ret);
			struct act r = newfd_install(e, t, req, NULL);
			/* the accepted connection is the recorded one */
			struct kp_cap_sock k;
			if (r.k == A_VAL && kp_cap_sock_get(c, &k)) {
				struct fdm *nf = fdm_get(t->proc, (int)r.v);
				if (nf && nf->rs) {
					nf->rs->ep = replay__model_find(e->model, &k);
					if (nf->rs->ep >= 0)
						e->ep_used[nf->rs->ep] = true;
				}
			}
			return r;
		}
		return newfd_install(e, t, req, NULL);
	case SK_CLOSE:
		return do_close(e, t, req);
	case SK_DUP:
		return do_dup(e, t, req, NULL);
	case SK_UNSUP:
		return fail_stop(e, t, "%s cannot be replayed", s->name);
	}
	return CONT;
}

/* ================================================================== recorded answers: dispatch */

static void set_reason(struct eng *e, struct task *t, const struct kp_cap_rec *c)
{
	if (t->proc == e->root_proc)
		replay_call_reason(c, e->res->reason, sizeof(e->res->reason));
}

/* Answers the call with record c (matched), moving the thread's cursor and virtual time. */
static struct act apply(struct eng *e, struct task *t, const struct seccomp_notif *req,
			const struct kp_cap_rec *c, const struct sysc *s)
{
	const __u64 *a = req->data.args;
	struct fdm *f = (s->cap.flags & KP_CAPD_FD) ? fdm_get(t->proc, (int)a[0]) : NULL;
	struct act r = VAL(c->ret);
	t->cur = c->ord + 1;
	set_reason(e, t, c);
	switch (s->kind) {
	case SK_IN:
		r = serve_in(e, t, req, c, s);
		break;
	case SK_STAT:
		r = serve_stat(e, t, req, c, s);
		break;
	case SK_WAIT:
		r = serve_wait_rec(e, t, req, c);
		break;
	case SK_TIME:
		r = serve_time_rec(e, t, req, c);
		break;
	case SK_SLEEP:
	case SK_SOCKOP:
		r = c->ret < 0 ? ERR(-c->ret) : VAL(c->ret);
		break;
	case SK_CONNECT: {
		struct kp_cap_sock k;
		if (f && f->rs && kp_cap_sock_get(c, &k) && k.dport) {
			f->rs->ep = replay__model_find(e->model, &k);
			f->rs->off = 0;
			if (f->rs->ep >= 0)
				e->ep_used[f->rs->ep] = true;
		}
		r = c->ret < 0 ? ERR(-c->ret) : VAL(c->ret);
		break;
	}
	case SK_OUT:
		e->res->compared++;
		if (c->ret < 0)
			r = ERR(-c->ret);
		else if (fd_real(f)) {
			capture_stdout(e, f);
			r = CONT;
		}
		break;
	case SK_NEWFD:
		r = c->ret < 0 ? ERR(-c->ret) : newfd_install(e, t, req, c);
		break;
	case SK_CLOSE:
		r = do_close(e, t, req);
		break;
	case SK_DUP:
		r = do_dup(e, t, req, c);
		break;
	case SK_UNSUP:
		return fail_stop(e, t, "%s cannot be replayed", s->name);
	}
	vnow_at_least(e, vmap(e, c->ts_exit));
	if (r.k != A_CONT)
		e->res->served++;
	return r;
}

/* ================================================================== matching */

enum { M_OK = 0, M_INPUT, M_OUTPUT };

static int mismatch(char *why, size_t n, int kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int mismatch(char *why, size_t n, int kind, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, n, fmt, ap);
	va_end(ap);
	return kind;
}

/* Does the call match record c? Fills why when not. Output bytes land in e->buf. */
static int match(struct eng *e, struct task *t, const struct seccomp_notif *req,
		 const struct kp_cap_rec *c, const struct sysc *s, char *why, size_t wl)
{
	const __u64 *a = req->data.args;
	int nr = req->data.nr;
	int mk = s->kind == SK_OUT ? M_OUTPUT : M_INPUT;
	if ((s->cap.flags & KP_CAPD_FD) && (int)a[0] != (int)c->args[0])
		return mismatch(why, wl, mk, "%s on fd %d, the recording has fd %d", s->name,
				(int)a[0], (int)c->args[0]);
	switch (s->kind) {
	case SK_IN:
		if (nr == SYS_lseek)
			return a[1] == c->args[1] && a[2] == c->args[2]
				       ? M_OK
				       : mismatch(why, wl, M_INPUT, "lseek to another place");
		if (nr == SYS_pread64 && a[3] != c->args[3])
			return mismatch(why, wl, M_INPUT, "pread64 at offset %llu, recorded %llu",
					(unsigned long long)a[3], (unsigned long long)c->args[3]);
		if ((nr == SYS_recvfrom && a[3] != c->args[3]) ||
		    (nr == SYS_recvmsg && a[2] != c->args[2]) ||
		    (nr == SYS_getrandom && a[2] != c->args[2]))
			return mismatch(why, wl, M_INPUT, "%s with other flags", s->name);
		if (c->ret > 0 && s->cap.pay != KP_PAY_NONE) {
			struct iov v[1024];
			int n = 0;
			uint64_t msg;
			if (iov_get(t, req, s, v, &n, &msg))
				return mismatch(why, wl, M_INPUT, "unreadable buffer");
			if (iov_total(v, n) < (uint64_t)c->ret)
				return mismatch(why, wl, M_INPUT,
						"%s asks for %" PRIu64 " bytes, the "
						"recorded call returned %lld",
						s->name, iov_total(v, n), (long long)c->ret);
		}
		return M_OK;
	case SK_STAT:
	case SK_NEWFD:
		if (s->cap.pay == KP_PAY_STR) {
			char path[PATH_MAX];
			if (mem_str(t, a[s->cap.pay_arg], path, sizeof(path)))
				return mismatch(why, wl, M_INPUT, "unreadable path");
			if (strncmp(path, (const char *)kp_cap_payload(c), c->payload_len))
				return mismatch(why, wl, M_INPUT,
						"%s(\"%.200s\"), the recording has "
						"\"%.200s\"",
						s->name, path, (const char *)kp_cap_payload(c));
		}
		if (nr == SYS_ioctl && a[1] != c->args[1])
			return mismatch(why, wl, M_INPUT, "ioctl with another request");
		if (nr == SYS_getsockopt && (a[1] != c->args[1] || a[2] != c->args[2]))
			return mismatch(why, wl, M_INPUT, "getsockopt of another option");
		if ((nr == SYS_openat && a[2] != c->args[2]) ||
		    (nr == SYS_open && a[1] != c->args[1]))
			return mismatch(why, wl, M_INPUT, "%s with other flags", s->name);
		if (nr == SYS_socket &&
		    (a[0] != c->args[0] || a[1] != c->args[1] || a[2] != c->args[2]))
			return mismatch(why, wl, M_INPUT, "socket of another kind");
		if ((nr == SYS_pipe2 || nr == SYS_eventfd2 || nr == SYS_accept4) &&
		    a[nr == SYS_accept4 ? 3 : 1] != c->args[nr == SYS_accept4 ? 3 : 1])
			return mismatch(why, wl, M_INPUT, "%s with other flags", s->name);
		return M_OK;
	case SK_OUT: {
		if (nr == SYS_fsync || nr == SYS_fdatasync)
			return M_OK;
		if (nr == SYS_ftruncate)
			return a[1] == c->args[1] ? M_OK
						  : mismatch(why, wl, M_OUTPUT,
							     "ftruncate to %llu "
							     "bytes, recorded %llu",
							     (unsigned long long)a[1],
							     (unsigned long long)c->args[1]);
		int64_t len = gather(e, t, req, s);
		if (len < 0)
			return mismatch(why, wl, M_OUTPUT, "unreadable buffer");
		uint64_t rl = c->ret > 0 ? (uint64_t)c->ret : 0;
		uint64_t cmp = KP_MIN(KP_MIN(rl, (uint64_t)c->payload_len), (uint64_t)e->buflen);
		size_t at = 0;
		while (at < cmp && e->buf[at] == kp_cap_payload(c)[at])
			at++;
		/* write/send/pwrite: the length asked must be the recorded one; vectored
		 * calls: at least what the recorded call wrote */
		bool len_ok = s->cap.pay == KP_PAY_BUF ? (uint64_t)len == c->args[2]
						       : (uint64_t)len >= rl;
		if (!len_ok || at < cmp) {
			struct kp_buf b = {0};
			buf_printf(&b, "%s(fd=%d) writes different bytes\n    expected: ", s->name,
				   (int)a[0]);
			esc(&b, kp_cap_payload(c) + (at > 20 ? at - 20 : 0),
			    KP_MIN((uint64_t)c->payload_len, rl) - (at > 20 ? at - 20 : 0));
			buf_printf(&b, " (%" PRIu64 " bytes)\n    actual:   ", rl);
			esc(&b, e->buf + (at > 20 ? at - 20 : 0),
			    e->buflen - (at > 20 ? at - 20 : 0));
			buf_printf(&b, " (%" PRId64 " bytes)\n    first difference at byte %zu",
				   len, at);
			snprintf(why, wl, "%s", b.data);
			buf_free(&b);
			return M_OUTPUT;
		}
		return M_OK;
	}
	case SK_SOCKOP:
		if (nr == SYS_setsockopt && (a[1] != c->args[1] || a[2] != c->args[2]))
			return mismatch(why, wl, M_INPUT, "setsockopt of another option");
		return M_OK;
	case SK_CONNECT: {
		uint8_t sa[128];
		size_t sl = KP_MIN(a[2], sizeof(sa));
		if (mem_read(t, a[1], sa, sl) ||
		    !sockaddr_eq(sa, sl, kp_cap_payload(c), c->payload_len))
			return mismatch(why, wl, M_INPUT, "connect to another address");
		return M_OK;
	}
	case SK_TIME:
		if (nr == SYS_clock_gettime && a[0] != c->args[0])
			return mismatch(why, wl, M_INPUT, "another clock");
		return M_OK;
	case SK_SLEEP: {
		int64_t ts[2], rts[2];
		uint64_t p = nr == SYS_nanosleep ? a[0] : a[2];
		if (mem_read(t, p, ts, 16))
			return mismatch(why, wl, M_INPUT, "unreadable timespec");
		if (c->aux_len >= 16) {
			memcpy(rts, kp_cap_aux(c), 16);
			if (ts[0] != rts[0] || ts[1] != rts[1])
				return mismatch(why, wl, M_INPUT, "%s for another duration",
						s->name);
		}
		if (nr == SYS_clock_nanosleep && (a[1] & TIMER_ABSTIME))
			return mismatch(why, wl, M_INPUT, "absolute sleep");
		return M_OK;
	}
	case SK_WAIT: {
		uint64_t to;
		if (timeout_of(t, req, &to))
			return mismatch(why, wl, M_INPUT, "unreadable timeout");
		if (nr == SYS_poll || nr == SYS_ppoll) {
			struct pollfd pf[128];
			if (a[1] != c->args[1] || a[1] > 128 || c->aux_len < a[1] * 8)
				return mismatch(why, wl, M_INPUT, "poll on %llu fds, recorded %llu",
						(unsigned long long)a[1],
						(unsigned long long)c->args[1]);
			if (mem_read(t, a[0], pf, a[1] * 8))
				return mismatch(why, wl, M_INPUT, "unreadable pollfd array");
			const struct pollfd *rp = (const void *)kp_cap_aux(c);
			for (uint64_t i = 0; i < a[1]; i++)
				if (pf[i].fd != rp[i].fd || pf[i].events != rp[i].events)
					return mismatch(why, wl, M_INPUT,
							"poll on other fds/events");
		} else if ((nr == SYS_select || nr == SYS_pselect6) && a[0] != c->args[0]) {
			return mismatch(why, wl, M_INPUT, "select on other fds");
		} else if ((nr == SYS_epoll_wait || nr == SYS_epoll_pwait || nr == 441) &&
			   (a[0] != c->args[0] || a[2] < (uint64_t)KP_MAX(c->ret, 0))) {
			return mismatch(why, wl, M_INPUT, "epoll_wait on another set");
		}
		/* the timeout: the recorded result stands if it would have come the same way */
		uint64_t rto = NONE_T, el = c->ts_enter ? c->ts_exit - c->ts_enter : 0;
		bool known = true;
		if (nr == SYS_poll)
			rto = (int)c->args[2] >= 0 ? (uint64_t)(int)c->args[2] * NSEC_PER_MSEC
						   : NONE_T;
		else if (nr == SYS_epoll_wait || nr == SYS_epoll_pwait)
			rto = (int)c->args[3] >= 0 ? (uint64_t)(int)c->args[3] * NSEC_PER_MSEC
						   : NONE_T;
		else
			known = false;
		double sc = e->scale;
		uint64_t waited = (uint64_t)((double)el * sc);
		if (c->ret > 0) {
			/* ready after `waited`: any timeout at least that long gives the same
			 * answer (1 ms of slack: the measured wait includes the wake-up) */
			if (to == NONE_T || to + NSEC_PER_MSEC >= waited ||
			    (known && to == rto && sc == 1.0))
				return M_OK;
			return mismatch(why, wl, M_INPUT,
					"%s with a %" PRIu64 " ms timeout; the "
					"recorded answer came after %" PRIu64 " ms",
					s->name, (uint64_t)(to / NSEC_PER_MSEC),
					(uint64_t)(waited / NSEC_PER_MSEC));
		}
		if (c->ret == 0) {
			if (known ? to == rto && sc == 1.0
				  : (to != NONE_T && to + 2 * NSEC_PER_MSEC >= el &&
				     to <= el + el / 20 + 2 * NSEC_PER_MSEC && sc == 1.0))
				return M_OK;
			return mismatch(why, wl, M_INPUT,
					"%s with a %" PRIu64 " ms timeout; the "
					"recorded one timed out after %" PRIu64 " ms",
					s->name, (uint64_t)(to == NONE_T ? 0 : to / NSEC_PER_MSEC),
					(uint64_t)(el / NSEC_PER_MSEC));
		}
		return M_OK;
	}
	case SK_CLOSE:
		return M_OK;
	case SK_DUP:
		if ((nr == SYS_dup2 || nr == SYS_dup3) && a[1] != c->args[1])
			return mismatch(why, wl, M_INPUT, "%s to another fd", s->name);
		if (nr == SYS_fcntl && (a[1] != c->args[1] || a[2] != c->args[2]))
			return mismatch(why, wl, M_INPUT, "fcntl with other arguments");
		return M_OK;
	case SK_UNSUP:
		return M_OK;
	}
	return M_OK;
}

/* ================================================================== dispatch */

static void go_off(struct eng *e, struct task *t, const char *why)
{
	if (t->off)
		return;
	t->off = true;
	note(e, "%s leaves the script at call #%u of its recorded stream: %s", tname(t), t->cur,
	     why);
}

/* "sendto(fd=3, 12 bytes)", "poll(1 fds, timeout 750 ms)", "openat(...)" */
static void describe_call(struct kp_buf *b, long nr, const __u64 *a)
{
	const struct sysc *s = sysc_by_nr(nr);
	if (!s) {
		buf_printf(b, "%s(...)", sysc_name(nr));
		return;
	}
	buf_printf(b, "%s(", s->name);
	if (s->cap.flags & KP_CAPD_FD)
		buf_printf(b, "fd=%d, ", (int)a[0]);
	if (s->cap.pay == KP_PAY_BUF && (s->kind == SK_OUT || s->kind == SK_IN))
		buf_printf(b, "%llu bytes", (unsigned long long)a[s->cap.pay_arg + 1]);
	else if (nr == SYS_poll)
		buf_printf(b, "%llu fds, timeout %d ms", (unsigned long long)a[1], (int)a[2]);
	else
		buf_printf(b, "%#llx, %#llx, %#llx", (unsigned long long)a[0],
			   (unsigned long long)a[1], (unsigned long long)a[2]);
	buf_puts(b, ")");
}

static struct act diverge(struct eng *e, struct task *t, const struct seccomp_notif *req,
			  const struct kp_cap_rec *c, const char *why)
{
	struct replay_result *res = e->res;
	buf_printf(&res->report,
		   "divergence in %s (recorded thread %u), call #%u of its stream "
		   "(global #%" PRIu64 "):\n",
		   tname(t), rec_thread(e->rec, t->rt)->tid, c->ord, (uint64_t)c->seq);
	buf_printf(&res->report, "  call:     ");
	describe_call(&res->report, req->data.nr, req->data.args);
	buf_printf(&res->report, "\n  recorded: ");
	describe_call(&res->report, c->nr, c->args);
	buf_printf(&res->report, " = %lld\n", (long long)c->ret);
	buf_printf(&res->report, "  %s\n", why);
	struct replay_divergence *d = &res->div;
	struct kp_buf cb = {0}, rb = {0};
	describe_call(&cb, req->data.nr, req->data.args);
	describe_call(&rb, c->nr, c->args);
	buf_printf(&rb, " = %lld", (long long)c->ret);
	d->tid = (uint32_t)t->tid;
	d->rec_tid = rec_thread(e->rec, t->rt)->tid;
	d->ord = c->ord;
	d->seq = c->seq;
	snprintf(d->call, sizeof(d->call), "%s", cb.data ? cb.data : "");
	snprintf(d->recorded, sizeof(d->recorded), "%s", rb.data ? rb.data : "");
	snprintf(d->why, sizeof(d->why), "%s", why);
	buf_free(&cb);
	buf_free(&rb);
	res->diverged = true;
	e->stop = true;
	return STOP;
}

/* Injections matching this call: the first --fail that fires, and the sum of --delays. */
static const struct replay_inj *inject(struct eng *e, struct task *t,
				       const struct seccomp_notif *req, uint64_t *delay)
{
	const struct replay_inj *fail = NULL;
	const struct sysc *s = sysc_by_nr(req->data.nr);
	*delay = 0;
	for (int i = 0; i < e->o->ninj; i++) {
		const struct replay_inj *j = &e->o->inj[i];
		if (j->nr != (int)req->data.nr)
			continue;
		if (j->fd >= 0) {
			bool hit = (s->cap.flags & KP_CAPD_FD) && (int)req->data.args[0] == j->fd;
			if (req->data.nr == SYS_poll || req->data.nr == SYS_ppoll) {
				/* a poll matches fd=N when N is one of its fds */
				struct pollfd pf[128];
				uint64_t n = KP_MIN(req->data.args[1], (uint64_t)128);
				if (!mem_read(t, req->data.args[0], pf, n * sizeof(pf[0])))
					for (uint64_t k = 0; k < n; k++)
						hit |= pf[k].fd == j->fd;
			}
			if (!hit)
				continue;
		}
		uint64_t seen = ++e->inj_seen[i];
		if (j->nth && seen != j->nth)
			continue;
		if (j->kind == REPLAY_FAIL && !fail)
			fail = j;
		if (j->kind == REPLAY_DELAY)
			*delay += e->o->fuzz_seed ? splitmix(&e->rng) % (j->delay_ns + 1)
						  : j->delay_ns;
	}
	return fail;
}

static bool is_next(struct eng *e, struct task *t, const struct kp_cap_rec *c)
{
	if (e->ntasks <= 1)
		return true; /* the common case, on every served call */
	for (int b = 0; b < NBUCKET; b++)
		for (struct task *u = e->tasks[b]; u; u = u->hnext) {
			if (u == t || u->rt < 0 || u->off || !u->linked || !u->proc ||
			    !u->proc->started)
				continue;
			const struct kp_cap_rec *n = next_rec(e, u);
			if (n && n->seq < c->seq)
				return false;
		}
	return true;
}

static struct act script_serve(struct eng *e, struct task *t, const struct seccomp_notif *req,
			       const struct sysc *s, bool forced)
{
	char why[2048];
	const struct kp_cap_rec *c;
	for (;;) {
		c = next_rec(e, t);
		if (!c) {
			go_off(e, t, "its recorded stream has ended");
			return model_serve(e, t, req, s);
		}
		/* a recorded clock system call the program now reads another way: skip it */
		const struct sysc *cs = sysc_by_nr(c->nr);
		if (c->nr != req->data.nr && cs && cs->kind == SK_TIME && s->kind != SK_TIME) {
			t->cur++;
			continue;
		}
		break;
	}
	if (c->nr != req->data.nr) {
		if (s->kind == SK_TIME)
			return synth_time(e, t, req);
		snprintf(why, sizeof(why), "the program calls %s where the recording has %s",
			 s->name, sysc_name(c->nr));
		if (s->kind == SK_OUT)
			return diverge(e, t, req, c, why);
		go_off(e, t, why);
		return model_serve(e, t, req, s);
	}
	int m = match(e, t, req, c, s, why, sizeof(why));
	if (m == M_OUTPUT)
		return diverge(e, t, req, c, why);
	if (m == M_INPUT && (req->data.nr == SYS_openat || req->data.nr == SYS_open) &&
	    c->nr == req->data.nr) {
		/*
		 * An open of a path the recording did not try. If it fails here too it was a probe
		 * (a loader trying library directories this machine's cache points it to): answer
		 * it for real and keep the thread on its recorded stream. If it opens something,
		 * the program now reads what the recording never saw: off script.
		 */
		struct act r = newfd_install(e, t, req, NULL);
		if (r.k == A_ERR) {
			e->res->modeled++;
			return r;
		}
		go_off(e, t, why);
		return r;
	}
	if (m == M_INPUT) {
		if (s->kind == SK_TIME)
			return synth_time(e, t, req);
		go_off(e, t, why);
		return model_serve(e, t, req, s);
	}
	if (!forced && !is_next(e, t, c))
		return HOLD;
	uint64_t delay;
	const struct replay_inj *fail = inject(e, t, req, &delay);
	if (fail) {
		t->cur = c->ord + 1;
		vnow_at_least(e, vmap(e, c->ts_exit));
		char m2[256];
		snprintf(m2, sizeof(m2), "injected %s: %s fails with %s", fail->spec, s->name,
			 strerrorname_np(fail->err) ? strerrorname_np(fail->err) : "an error");
		go_off(e, t, m2);
		if (t->proc == e->root_proc && strerrorname_np(fail->err))
			snprintf(e->res->reason, sizeof(e->res->reason), "%s from %s",
				 strerrorname_np(fail->err), s->name);
		e->res->served++;
		return ERR(fail->err);
	}
	if (delay) {
		note(e, "%s: %s delayed by %" PRIu64 " ms", tname(t), s->name,
		     (uint64_t)(delay / NSEC_PER_MSEC));
		e->shift += delay;
		if (s->kind == SK_WAIT && c->ret > 0) {
			uint64_t to, el = c->ts_enter ? c->ts_exit - c->ts_enter : 0;
			timeout_of(t, req, &to);
			if (to != NONE_T && (uint64_t)((double)el * e->scale) + delay > to) {
				snprintf(why, sizeof(why),
					 "%s delayed past its %" PRIu64 " ms timeout", s->name,
					 (uint64_t)(to / NSEC_PER_MSEC));
				t->cur = c->ord + 1;
				go_off(e, t, why);
				return model_serve(e, t, req, s);
			}
		}
	}
	return apply(e, t, req, c, s);
}

/* Recorded entry time of the task's next call: its place in the release order. */
static uint64_t release_key(struct eng *e, struct task *t)
{
	if (t->rt < 0 || t->off)
		return 0;
	const struct kp_cap_rec *n = next_rec(e, t);
	if (!n)
		return UINT64_MAX - 1;
	return n->ts_enter ? n->ts_enter : n->ts_exit;
}

static void pend_push(struct eng *e, struct task *t, const struct seccomp_notif_resp *r,
		      bool ptrace_cont)
{
	struct pend *p = xcalloc(1, sizeof(*p));
	p->t = t;
	p->ptrace_cont = ptrace_cont;
	if (r)
		p->resp = *r;
	p->key = release_key(e, t);
	p->next = e->pends;
	e->pends = p;
}

/* Is task t running or runnable (not blocked in the kernel, not stopped)? */
static bool task_runnable(const struct task *t)
{
	char path[96], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", t->proc ? t->proc->tgid : t->tid,
		 t->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'R';
}

/*
 * A task that runs on its own (a thread just created, not yet at its first call) and whose next
 * recorded call comes before `key`: releasing another task now could let that one take a lock
 * first that the recording shows this one taking first. Such a task is let reach its call.
 */
static bool earlier_task_running(struct eng *e, const struct task *x, uint64_t key)
{
	for (int b = 0; b < NBUCKET; b++)
		for (struct task *u = e->tasks[b]; u; u = u->hnext) {
			if (u == x || u->rt < 0 || u->off || !u->linked || u->parked)
				continue;
			const struct kp_cap_rec *n = next_rec(e, u);
			if (!n || (n->ts_enter ? n->ts_enter : n->ts_exit) >= key)
				continue;
			bool waiting = false; /* at a call already: pending or held */
			for (struct pend *p = e->pends; p && !waiting; p = p->next)
				waiting = p->t == u;
			for (struct held *h = e->held; h && !waiting; h = h->next)
				waiting = (pid_t)h->req.pid == u->tid;
			if (!waiting && task_runnable(u))
				return true;
		}
	return false;
}

/* Lets the next task run, when none is running. */
static void release_next(struct eng *e)
{
	while (!e->inflight && e->pends) {
		/* calls that have arrived but are not received yet come first: a task waiting in
		 * the notification queue looks blocked (S) from outside */
		struct pollfd np = {.fd = e->nfd, .events = POLLIN};
		if (poll(&np, 1, 0) > 0 && (np.revents & POLLIN))
			return;
		struct pend **best = &e->pends;
		for (struct pend **pp = &e->pends; *pp; pp = &(*pp)->next)
			if ((*pp)->key < (*best)->key)
				best = pp;
		/* waits at most HOLD_BREAK_MS: the earlier one may be spinning on a lock that
		 * this one holds */
		uint64_t now = now_mono_ns();
		if (!(*best)->ptrace_cont &&
		    (!e->deferred || now - e->deferred_since < HOLD_BREAK_MS * NSEC_PER_MSEC) &&
		    earlier_task_running(e, (*best)->t, (*best)->key)) {
			if (!e->deferred)
				e->deferred_since = now;
			e->deferred = true; /* look again in a millisecond, or at its call */
			return;
		}
		e->deferred = false;
		struct pend *x = *best;
		*best = x->next;
		int r = x->ptrace_cont ? (int)ptrace(PTRACE_CONT, x->t->tid, 0, 0)
				       : ioctl(e->nfd, SECCOMP_IOCTL_NOTIF_SEND, &x->resp);
		if (r == 0)
			e->inflight = x->t;
		free(x);
	}
}

/* Is the running task blocked somewhere we do not see (a futex, a sleep)? Then the next one
 * may go. */
static void check_inflight(struct eng *e)
{
	if (!e->inflight)
		return;
	char path[96], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", e->inflight->proc->tgid,
		 e->inflight->tid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0) {
		e->inflight = NULL;
		return;
	}
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	if (p && p[1] == ' ' && (p[2] == 'S' || p[2] == 'D' || p[2] == 't' || p[2] == 'T'))
		e->inflight = NULL;
}

static int respond(struct eng *e, struct task *t, const struct seccomp_notif *req, struct act a)
{
	struct seccomp_notif_resp r = {.id = req->id};
	switch (a.k) {
	case A_VAL:
		r.val = a.v;
		break;
	case A_ERR:
		r.error = -(int32_t)a.v;
		break;
	case A_CONT:
		r.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		e->res->passed++;
		break;
	default:
		return 0;
	}
	if (e->sched && t) {
		pend_push(e, t, &r, false);
		return 0;
	}
	if (ioctl(e->nfd, SECCOMP_IOCTL_NOTIF_SEND, &r) < 0)
		return -errno; /* ENOENT: the task was killed meanwhile */
	return 0;
}

static void handle(struct eng *e, struct seccomp_notif *req, bool forced)
{
	struct task *t = task_find(e, (pid_t)req->pid);
	const struct sysc *s = sysc_by_nr(req->data.nr);
	struct act a;
	if (!forced)
		e->res->stops++;
	if (t && e->inflight == t)
		e->inflight = NULL; /* it reached a system call: its run is over */
	if (!t || !t->proc || !t->proc->started || !s || e->stop ||
	    req->data.arch != AUDIT_ARCH_X86_64) {
		respond(e, NULL, req, CONT);
		return;
	}
	uint64_t ip = req->data.instruction_pointer;
	if (ip >= t->proc->ld_lo && ip < t->proc->ld_hi) {
		/* the dynamic loader: this machine's libraries, for real */
		if (s->kind == SK_NEWFD)
			a = newfd_install(e, t, req, NULL);
		else if (s->kind == SK_CLOSE)
			a = do_close(e, t, req);
		else if (s->kind == SK_DUP)
			a = do_dup(e, t, req, NULL);
		else
			a = CONT;
	} else if (t->rt < 0 || t->off) {
		a = model_serve(e, t, req, s);
	} else {
		a = script_serve(e, t, req, s, forced);
	}
	if (e->o->verbose > 1 && a.k != A_HOLD)
		fprintf(stderr, "kprobe replay: %d %s(%llu, %llu, %llu) -> %s %lld%s\n", t->tid,
			s->name, (unsigned long long)req->data.args[0],
			(unsigned long long)req->data.args[1],
			(unsigned long long)req->data.args[2],
			a.k == A_CONT  ? "real"
			: a.k == A_ERR ? "error"
				       : "value",
			(long long)a.v, t->off ? " (model)" : "");
	if (a.k == A_HOLD) {
		struct held *h = xmalloc(sizeof(*h));
		h->req = *req;
		h->next = NULL;
		struct held **pp = &e->held;
		while (*pp)
			pp = &(*pp)->next;
		*pp = h;
		e->res->held++;
		return;
	}
	if (a.k == A_STOP)
		return;
	respond(e, t, req, a);
}

/* Serves held calls whose turn has come; forced: the one with the lowest sequence anyway. */
static void release_held(struct eng *e, bool forced)
{
	for (bool again = true; again && !e->stop;) {
		again = false;
		struct held **best = NULL;
		uint64_t best_seq = UINT64_MAX;
		for (struct held **h = &e->held; *h; h = &(*h)->next) {
			struct task *t = task_find(e, (pid_t)(*h)->req.pid);
			const struct kp_cap_rec *c = t && t->rt >= 0 ? next_rec(e, t) : NULL;
			uint64_t seq = c ? c->seq : 0;
			if (!forced && c && !is_next(e, t, c))
				continue;
			if (seq < best_seq) {
				best_seq = seq;
				best = h;
			}
		}
		if (best) {
			struct held *x = *best;
			*best = x->next;
			if (forced) {
				e->res->order_breaks++;
				note(e,
				     "thread %d served out of the recorded order (the others did "
				     "not "
				     "come within %d ms)",
				     x->req.pid, HOLD_BREAK_MS);
			}
			handle(e, &x->req, true);
			free(x);
			forced = false;
			again = true;
		}
	}
}

/* ================================================================== lifecycle */

static void kill_all(struct eng *e)
{
	for (struct proc *p = e->procs; p; p = p->next)
		kill(p->tgid, SIGKILL);
	e->killed = true;
}

static bool is_thread_of(pid_t tid, pid_t tgid)
{
	char path[64], line[128];
	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	int found = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Tgid: %d", &found) == 1)
			break;
	fclose(f);
	return found == tgid;
}

/* A new task's first run: at once, or in the release order of a multi-task replay. */
static void task_start(struct eng *e, struct task *t)
{
	if (e->sched)
		pend_push(e, t, NULL, true);
	else
		ptrace(PTRACE_CONT, t->tid, 0, 0);
}

static void link_child(struct eng *e, struct task *parent, pid_t ntid, int ev)
{
	struct task *c = task_find(e, ntid);
	if (!c) {
		c = task_new(e, ntid);
		c->want_initial = true;
	}
	bool thread = ev == PTRACE_EVENT_CLONE && is_thread_of(ntid, parent->proc->tgid);
	if (thread) {
		c->proc = parent->proc;
		parent->proc->refs++;
	} else {
		struct proc *pp = parent->proc, *np = proc_new(e, ntid);
		np->started = pp->started;
		np->ld_lo = pp->ld_lo;
		np->ld_hi = pp->ld_hi;
		np->rtgid = 0;
		for (int i = 0; i < pp->nfds; i++) {
			struct fdm *d = fdm_get(np, i);
			if (pp->fds[i].kind && d)
				fdm_copy(d, &pp->fds[i]);
		}
		c->proc = np;
	}
	uint32_t k = parent->nchildren++;
	int rc = parent->rt >= 0 ? rec_child(e->rec, parent->rt, k) : -1;
	if (rc >= 0 && (!!(rec_thread(e->rec, rc)->flags & REC_T_THREAD)) == thread) {
		c->rt = rc;
		c->off = parent->off;
		if (!thread)
			c->proc->rtgid = rec_thread(e->rec, rc)->tgid;
	} else if (parent->rt >= 0 && parent->proc->started) {
		note(e,
		     "task %d (child #%u of %s) has no recorded counterpart: answered by the "
		     "model",
		     ntid, k, tname(parent));
	}
	c->linked = true;
	if (c->parked) {
		c->parked = false;
		task_start(e, c);
	}
}

static void on_exec(struct eng *e, struct task *t)
{
	unsigned long former = 0;
	ptrace(PTRACE_GETEVENTMSG, t->tid, 0, &former);
	if ((pid_t)former != t->tid) {
		/* a non-leader thread exec'd: it carries on as the leader */
		struct task *o = task_find(e, (pid_t)former);
		if (o) {
			t->rt = o->rt;
			t->cur = o->cur;
			t->off = o->off;
			t->nchildren = o->nchildren;
		}
	}
	struct proc *p = t->proc;
	if (p->memfd >= 0)
		close(p->memfd);
	p->memfd = -1;
	char err[256];
	int fd = proc_mem(p), merr = errno;
	if (fd < 0)
		note(e,
		     "%s: cannot open /proc/%d/mem (%s): its memory goes through "
		     "process_vm_readv/writev and its vDSO clock reads are not seen",
		     tname(t), p->tgid, strerror(merr));
	else if (replay__vdso_patch(t->tid, fd, err, sizeof(err)) < 0)
		note(e, "%s", err);
	/* close-on-exec fds are gone */
	for (int i = 0; i < p->nfds; i++) {
		if (!p->fds[i].kind)
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->tgid, i);
		if (access(path, F_OK) != 0)
			fdm_clear(&p->fds[i]);
	}
	if (replay__loader_range(t->tid, &p->ld_lo, &p->ld_hi) < 0)
		p->ld_lo = p->ld_hi = 0;
	p->started = true;
}

/* Drains ptrace events. */
static void reap(struct eng *e)
{
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG | __WALL);
		if (pid <= 0)
			return;
		struct task *t = task_find(e, pid);
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (pid == e->root) {
				e->res->status = st;
				e->root_done = true;
			}
			if (t)
				task_del(e, t);
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		int sig = WSTOPSIG(st), ev = st >> 16;
		if (!t) {
			/* a new task whose parent's event has not come yet */
			t = task_new(e, pid);
			t->parked = true;
			continue;
		}
		switch (ev) {
		case PTRACE_EVENT_CLONE:
		case PTRACE_EVENT_FORK:
		case PTRACE_EVENT_VFORK: {
			unsigned long nt = 0;
			ptrace(PTRACE_GETEVENTMSG, pid, 0, &nt);
			link_child(e, t, (pid_t)nt, ev);
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		}
		case PTRACE_EVENT_EXEC:
			on_exec(e, t);
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		case 0:
			if (sig == SIGSTOP && t->want_initial) {
				t->want_initial = false;
				if (t->linked)
					task_start(e, t);
				else
					t->parked = true;
				break;
			}
			ptrace(PTRACE_CONT, pid, 0, sig); /* signals pass through */
			break;
		default:
			ptrace(PTRACE_CONT, pid, 0, 0);
			break;
		}
	}
}

static void child_run(char *const *argv, const struct sock_fprog *prog, const struct replay_opts *o,
		      const sigset_t *oldmask, bool rt, char *const *envp, const char *cwd)
{
	if (rt) {
		struct sched_param sp = {.sched_priority = 1};
		sched_setscheduler(0, SCHED_RR, &sp); /* failure: replay still runs, less ordered */
	}
	if (o->stdout_fd >= 0)
		dup2(o->stdout_fd, 1);
	if (o->stderr_fd >= 0)
		dup2(o->stderr_fd, 2);
	/* the command starts with 0, 1 and 2 open, as it was recorded: a closed one, or one that
	 * is only some descriptor of ours about to close at exec, becomes /dev/null */
	for (int fd = 0; fd < 3; fd++) {
		int fl = fcntl(fd, F_GETFD);
		if (fl < 0 || (fl & FD_CLOEXEC)) {
			int n = open("/dev/null", O_RDWR);
			if (n >= 0 && n != fd) {
				dup2(n, fd);
				close(n);
			}
		}
	}
	syscall(SYS_close_range, 3, ~0u, 0);
	sigprocmask(SIG_SETMASK, oldmask, NULL);
	if (ptrace(PTRACE_TRACEME, 0, 0, 0) < 0)
		_exit(126);
	raise(SIGSTOP);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	long lfd = syscall(
		SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, prog);
	if (lfd < 0)
		lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
			      SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
	if (lfd != 3)
		_exit(125);
	raise(SIGSTOP);
	if (envp) {
		/* the recorded world: its environment and working directory (the latter if it
		 * exists here) */
		if (cwd && *cwd && chdir(cwd) != 0) {
			/* stay where we are; file paths relative to it may differ */
		}
		execvpe(argv[0], argv, envp);
	} else {
		execvp(argv[0], argv);
	}
	dprintf(2, "kprobe replay: cannot run %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

static int spawn(struct eng *e, char *const *argv, const sigset_t *oldmask, bool rt, char *err,
		 size_t errlen)
{
	static struct sock_filter insns[1024];
	int n = sysc_filter_build(insns, 1024);
	if (n < 0) {
		snprintf(err, errlen, "cannot build the seccomp filter: %s", strerror(-n));
		return n;
	}
	struct sock_fprog prog = {.len = (unsigned short)n, .filter = insns};
	pid_t pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		return -errno;
	}
	if (pid == 0)
		child_run(argv, &prog, e->o, oldmask, rt,
			  e->o->keep_env || !e->meta->envc ? NULL : e->meta->envp, e->meta->cwd);
	e->root = pid;
	int st;
	if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st)) {
		snprintf(err, errlen, "the command did not stop for tracing (status 0x%x)", st);
		return -ECHILD;
	}
	if (ptrace(PTRACE_SETOPTIONS, pid, 0,
		   PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
			   PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL) < 0) {
		snprintf(err, errlen, "ptrace: %s", strerror(errno));
		kill(pid, SIGKILL);
		return -errno;
	}
	ptrace(PTRACE_CONT, pid, 0, 0);
	if (waitpid(pid, &st, __WALL) != pid || !WIFSTOPPED(st)) {
		snprintf(err, errlen,
			 "cannot install the seccomp filter in the command (status "
			 "0x%x; needs Linux 5.9+ with seccomp user notification)",
			 st);
		kill(pid, SIGKILL);
		waitpid(pid, &st, __WALL);
		return -ENOTSUP;
	}
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	e->nfd = pfd >= 0 ? (int)syscall(SYS_pidfd_getfd, pfd, 3, 0) : -1;
	if (e->nfd < 0) {
		snprintf(err, errlen, "cannot take the seccomp listener from the command: %s",
			 strerror(errno));
		kill(pid, SIGKILL);
		return -errno;
	}
	fcntl(e->nfd, F_SETFD, FD_CLOEXEC);
	ioctl(e->nfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, (__u64)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
	struct proc *p = proc_new(e, pid);
	p->pidfd = pfd;
	p->rtgid = e->meta->root_tid;
	e->root_proc = p;
	struct task *t = task_new(e, pid);
	t->proc = p;
	t->linked = true;
	t->rt = rec_thread_find(e->rec, e->meta->root_tid);
	for (int fd = 0; fd < 3; fd++) {
		struct fdm *f = fdm_get(p, fd);
		f->kind = FK_EXT;
		f->ext = (uint8_t)fd;
	}
	ptrace(PTRACE_CONT, pid, 0, 0);
	return 0;
}

/* ================================================================== run */

/*
 * A single-task replay waits for notifications in a blocking SECCOMP_IOCTL_NOTIF_RECV (one
 * system call less per served call than poll + RECV). Process events still have to get through:
 * this thread turns SIGCHLD (from a signalfd) into SIGUSR2 aimed at the supervisor, which
 * interrupts the ioctl, and repeats it until the supervisor has taken note, so an event that
 * lands just before the ioctl starts is not lost.
 */
struct kicker {
	pthread_t main, th;
	int sfd, efd;
	atomic_int pending;
	bool running;
};

static void on_kick(int sig)
{
	(void)sig;
}

static void *kicker_run(void *arg)
{
	struct kicker *k = arg;
	struct pollfd p[2] = {{k->sfd, POLLIN, 0}, {k->efd, POLLIN, 0}};
	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return NULL;
		if (p[1].revents)
			return NULL;
		if (!(p[0].revents & POLLIN))
			continue;
		struct signalfd_siginfo si;
		while (read(k->sfd, &si, sizeof(si)) > 0)
			;
		atomic_store(&k->pending, 1);
		while (atomic_load(&k->pending)) {
			pthread_kill(k->main, SIGUSR2);
			struct pollfd q = {k->efd, POLLIN, 0};
			if (poll(&q, 1, 1) > 0)
				return NULL;
		}
	}
}

static int kicker_start(struct kicker *k, int sfd)
{
	struct sigaction sa = {.sa_handler = on_kick}; /* no SA_RESTART: the ioctl returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR2, &sa, NULL);
	k->main = pthread_self();
	k->sfd = sfd;
	k->efd = eventfd(0, EFD_CLOEXEC);
	atomic_store(&k->pending, 0);
	sigset_t m, old;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &m, &old); /* the kicker never takes SIGUSR2 itself */
	k->running = k->efd >= 0 && pthread_create(&k->th, NULL, kicker_run, k) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return k->running ? 0 : -1;
}

static void kicker_stop(struct kicker *k)
{
	if (k->running) {
		uint64_t one = 1;
		if (write(k->efd, &one, 8) != 8)
			pthread_cancel(k->th);
		pthread_join(k->th, NULL);
		k->running = false;
	}
	if (k->efd >= 0)
		close(k->efd);
	signal(SIGUSR2, SIG_DFL);
}

static void pin_cpu(void)
{
	int cpu = sched_getcpu();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu >= 0 ? cpu : 0, &set);
	sched_setaffinity(0, sizeof(set), &set);
}

int replay_run(const struct replay_opts *o, struct replay_result *res, char *err, size_t errlen)
{
	struct eng e = {0};
	sigset_t mask, old;
	int ret = 0;
	cpu_set_t oldcpus;
	memset(res, 0, sizeof(*res));
	res->status = -1;
	e.o = o;
	e.rec = o->rec;
	e.meta = rec_meta(o->rec);
	e.res = res;
	e.nfd = e.sfd = -1;
	e.scale = o->time_scale > 0 ? o->time_scale : 1.0;
	e.vnow = e.meta->mono_base;
	e.rng = e.meta->mono_base ^ (o->fuzz_seed * 0x9e3779b97f4a7c15ull);
	e.inj_seen = xcalloc((size_t)o->ninj + 1, sizeof(uint64_t));
	e.buf = xmalloc(SCRATCH);
	char *const *argv0 = o->argv && o->argv[0] ? o->argv : e.meta->argv;
	if (!argv0 || !argv0[0]) {
		snprintf(err, errlen, "no command to run");
		ret = -EINVAL;
		goto cleanup_nomask;
	}
	/* the command runs in the recorded working directory: a relative program path given
	 * here means here */
	int argc0 = 0;
	while (argv0[argc0])
		argc0++;
	char **argv = xcalloc((size_t)argc0 + 1, sizeof(char *));
	char absprog[PATH_MAX + 1];
	memcpy(argv, argv0, sizeof(char *) * (size_t)argc0);
	if (o->argv && strchr(argv[0], '/') && argv[0][0] != '/' && realpath(argv[0], absprog))
		argv[0] = absprog;
	e.argv = argv;
	if ((ret = replay__model_build(&e.model, e.rec, err, errlen)) < 0)
		goto cleanup_nomask;
	e.ep_used = xcalloc((size_t)e.model->neps + 1, sizeof(bool));
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			break; /* keep our own descriptors off the standard numbers */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sched_getaffinity(0, sizeof(oldcpus), &oldcpus);
	pin_cpu();
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, &old);
	e.sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	/*
	 * Several recorded tasks: run them SCHED_RR on the pinned CPU, below this supervisor.
	 * Then a task runs until it blocks (no time slicing among them short of 100 ms), tasks
	 * woken by our answers run in the order we answered, and we answer in the recorded order:
	 * user-space races between system calls (who takes a mutex first) come out as recorded.
	 * A single-threaded replay keeps the normal policy.
	 */
	int ntree = 0, oldpol = sched_getscheduler(0);
	struct sched_param oldsp;
	sched_getparam(0, &oldsp);
	for (int i = 0; i < rec_nthreads(e.rec); i++)
		ntree += (rec_thread(e.rec, i)->flags & REC_T_TREE) != 0;
	bool rt = false;
	if (ntree > 1) {
		struct sched_param sp = {.sched_priority = 2};
		rt = sched_setscheduler(0, SCHED_RR, &sp) == 0;
		if (!rt)
			note(&e,
			     "cannot use SCHED_RR (%s): threads may interleave differently from "
			     "the "
			     "recording",
			     strerror(errno));
	}
	e.sched = rt;
	uint64_t t0 = now_mono_ns();
	if ((ret = spawn(&e, argv, &old, rt, err, errlen)) < 0)
		goto cleanup;

	struct pollfd pf[2] = {{e.nfd, POLLIN, 0}, {e.sfd, POLLIN, 0}};
	struct seccomp_notif req;
	bool need_reap = true;
	struct kicker kick = {.efd = -1};
	bool blocking =
		!e.sched && !getenv("KPROBE_REPLAY_POLL") && kicker_start(&kick, e.sfd) == 0;
	while (e.ntasks > 0) {
		if (blocking && atomic_exchange(&kick.pending, 0))
			need_reap = true;
		if (need_reap) {
			reap(&e);
			need_reap = false;
		}
		if ((e.stop || e.root_done) && !e.killed)
			kill_all(&e);
		if (e.ntasks == 0)
			break;
		if (blocking && !e.held && pf[0].fd >= 0 && !e.stop && !e.root_done) {
			memset(&req, 0, sizeof(req));
			if (ioctl(e.nfd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
				handle(&e, &req, false);
				if (e.held)
					release_held(&e, false);
			} else if (errno != EINTR && errno != ENOENT) {
				pf[0].fd = -1; /* nobody left under the filter: wait for exits */
			}
			continue;
		}
		if (e.sched)
			release_next(&e);
		/* a running task that others wait for: look at it every millisecond */
		int to = (e.inflight || e.deferred) && e.pends ? 1 : e.held ? HOLD_BREAK_MS : -1;
		int r = poll(pf, 2, to);
		if (r == 0 && e.inflight && e.pends) {
			check_inflight(&e);
			continue;
		}
		if (r == 0 && e.deferred && e.pends)
			continue; /* release_next looks again */
		if (r < 0 && errno != EINTR)
			break;
		if (pf[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(e.sfd, &si, sizeof(si)) > 0)
				;
			need_reap = true;
		}
		if (pf[0].revents & POLLIN) {
			memset(&req, 0, sizeof(req));
			if (ioctl(e.nfd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
				handle(&e, &req, false);
				if (e.held)
					release_held(&e, false);
			}
		} else if (pf[0].revents & (POLLHUP | POLLERR)) {
			pf[0].fd = -1; /* nobody left under the filter */
		} else if (r == 0 && e.held) {
			release_held(&e, true);
		}
		if (pf[0].fd < 0 && !(pf[1].revents & POLLIN) && e.ntasks > 0)
			need_reap = true;
	}
	kicker_stop(&kick);
	res->wall_ns = now_mono_ns() - t0;
	res->virt_ns = e.vnow - e.meta->mono_base;
cleanup:
	while (e.held) {
		struct held *h = e.held;
		e.held = h->next;
		free(h);
	}
	while (e.pends) {
		struct pend *x = e.pends;
		e.pends = x->next;
		free(x);
	}
	for (int b = 0; b < NBUCKET; b++)
		while (e.tasks[b])
			task_del(&e, e.tasks[b]);
	while (e.procs) {
		e.procs->refs = 1;
		proc_put(&e, e.procs);
	}
	if (e.nfd >= 0)
		close(e.nfd);
	if (e.sfd >= 0)
		close(e.sfd);
	sigprocmask(SIG_SETMASK, &old, NULL);
	sched_setscheduler(0, oldpol, &oldsp);
	sched_setaffinity(0, sizeof(oldcpus), &oldcpus);
cleanup_nomask:
	free(e.argv);
	replay__model_free(e.model);
	free(e.ep_used);
	free(e.inj_seen);
	free(e.buf);
	return ret;
}

void replay_result_free(struct replay_result *r)
{
	buf_free(&r->report);
	buf_free(&r->notes);
	buf_free(&r->out);
}
