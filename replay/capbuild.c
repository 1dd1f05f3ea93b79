/*
 * capbuild.c - recordings built from the capture store (capstore_recording) and the search for
 * a process's capture around an incident (capstore_find_process). Contract in capstore.h.
 *
 * A recording needs more than the process's own records:
 *   - the processes it forked in the range (fork records name them), so the tree replays;
 *   - its peers: local processes captured on the same node whose connections are the other
 *     side of its connections (the same address pair, reversed). What they sent, and when, is
 *     what lets an off-script replay (another timeout, a fix) get answers the recorded run
 *     never read; they go in as REC_T_PEER streams, as with `kprobe record --pid`;
 *   - metadata the agent's capture does not carry as such: the command line (the exec record's
 *     argument vector), the inodes of fds 0-2 (the first calls on them), the exit status (the
 *     exit record), the clocks (the clock offset the records travelled with), and whether the
 *     kernel side lost records then (KP_CAP_LOST markers: the recording is then incomplete).
 * What it cannot know: the environment and working directory (a replay runs in its own).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "replay/capstore.h"
#include "replay/rec.h"

#define MAX_PIDS   64 /* processes in a recording: the tree and its peers */
#define MAX_NODES  8
#define MAX_ROUNDS 8
#define MAX_TUPLES 4096
#define LOST_SLACK NSEC_PER_SEC

struct crec {
	uint64_t node;
	int64_t clock_off;
	struct kp_cap_rec *r; /* owned copy */
};

struct coll {
	struct crec *v;
	size_t n, cap;
	uint64_t bytes, max_bytes;
	uint32_t pid; /* node discovery: records of this pid name the nodes */
	uint64_t nodes[MAX_NODES];
	int nnodes;
	bool over;
};

static int collect(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct coll *cl = ctx;
	if (c->kind == KP_CAP_LOST)
		return 0;
	if (c->pid == cl->pid) {
		int k = 0;
		while (k < cl->nnodes && cl->nodes[k] != node)
			k++;
		if (k == cl->nnodes && k < MAX_NODES)
			cl->nodes[cl->nnodes++] = node;
	}
	if (cl->bytes + c->len > cl->max_bytes) {
		cl->over = true;
		return -E2BIG;
	}
	if (cl->n == cl->cap) {
		cl->cap = cl->cap ? cl->cap * 2 : 4096;
		cl->v = xrealloc(cl->v, cl->cap * sizeof(*cl->v));
	}
	struct kp_cap_rec *copy = xmalloc(c->len);
	memcpy(copy, c, c->len);
	cl->v[cl->n++] = (struct crec){node, clock_off, copy};
	cl->bytes += c->len;
	return 0;
}

static void coll_free(struct coll *cl)
{
	for (size_t i = 0; i < cl->n; i++)
		free(cl->v[i].r);
	free(cl->v);
	memset(cl, 0, sizeof(*cl));
}

static bool has_pid(const uint32_t *v, int n, uint32_t p)
{
	for (int i = 0; i < n; i++)
		if (v[i] == p)
			return true;
	return false;
}

/* The directed address pairs of the tree's stream sockets, for finding peers. */
struct tuples {
	struct kp_cap_sock v[MAX_TUPLES];
	int n;
};

static bool sock_of(const struct kp_cap_rec *c, struct kp_cap_sock *k)
{
	return c->kind == KP_CAP_CALL && kp_cap_sock_get(c, k) && k->sport && k->dport &&
	       k->type == SOCK_STREAM;
}

static bool tuple_rev(const struct kp_cap_sock *a, const struct kp_cap_sock *b)
{
	return a->family == b->family && a->sport == b->dport && a->dport == b->sport &&
	       !memcmp(a->saddr, b->daddr, 16) && !memcmp(a->daddr, b->saddr, 16);
}

struct peerscan {
	const struct tuples *t;
	uint32_t *pids;
	int *npids, ntree;
};

static int find_peers(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct peerscan *ps = ctx;
	struct kp_cap_sock k;
	if (has_pid(ps->pids, *ps->npids, c->pid) || !sock_of(c, &k))
		return 0;
	for (int i = 0; i < ps->t->n; i++)
		if (tuple_rev(&ps->t->v[i], &k)) {
			if (*ps->npids < MAX_PIDS)
				ps->pids[(*ps->npids)++] = c->pid;
			break;
		}
	return 0;
}

struct lostsum {
	uint64_t n;
};

static int sum_lost(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	if (c->kind == KP_CAP_LOST)
		((struct lostsum *)ctx)->n += c->args[0];
	return 0;
}

/*
 * Which recorded calls were the dynamic loader's: the agent sends a KP_CAP_LOADER record read
 * from /proc while the process runs. When it could not (the process was gone by then), the exec
 * record's AT_BASE stands in with LOADER_SPAN bytes above it: the loader is mapped there first,
 * and with the top-down mmap layout nothing the program maps comes after it (the vDSO sits just
 * below). A heuristic, used only without the agent's record.
 */
#define LOADER_SPAN (1ull << 20)
static void add_loader_fallbacks(struct rec_writer *w, const struct coll *cl, uint32_t root,
				 uint64_t start)
{
	for (size_t i = 0; i < cl->n; i++) {
		const struct kp_cap_rec *e = cl->v[i].r;
		if (e->kind != KP_CAP_EXEC || !e->args[0] || (e->pid == root && e->ts_exit < start))
			continue;
		bool have = false;
		for (size_t k = 0; k < cl->n && !have; k++) {
			const struct kp_cap_rec *l = cl->v[k].r;
			have = l->kind == KP_CAP_LOADER && l->pid == e->pid &&
			       l->ts_exit == e->ts_exit;
		}
		if (have)
			continue;
		struct kp_cap_rec l = {.len = KP_CAP_HDR_LEN,
				       .kind = KP_CAP_LOADER,
				       .pid = e->pid,
				       .tid = e->tid,
				       .ts_enter = e->ts_exit,
				       .ts_exit = e->ts_exit,
				       .args = {e->args[0], e->args[0] + LOADER_SPAN}};
		rec_writer_add(w, &l, l.len);
	}
}

int capstore_recording(struct capstore *cs, const struct capstore_recq *q, struct kp_buf *out,
		       struct capstore_recinfo *info, char *err, size_t errlen)
{
	struct coll cl = {.max_bytes = q->max_bytes ? q->max_bytes : UINT64_MAX, .pid = q->pid};
	struct rec_writer *w = NULL;
	char *envbuf = NULL;
	uint32_t pids[MAX_PIDS] = {q->pid};
	int npids = 1, ntree, rc;
	memset(info, 0, sizeof(*info));
	info->pid = q->pid;
	if (!q->pid || q->from_ns > q->to_ns) {
		snprintf(err, errlen, "need a pid and a time range with from <= to");
		return -EINVAL;
	}

	/* 1. the process and, round by round, the processes its tree forked */
	struct capstore_sel sel = {q->node, pids, 1, q->from_ns, q->to_ns};
	uint64_t node = q->node;
	int done = 0;
	for (int round = 0; round < MAX_ROUNDS && done < npids; round++) {
		sel.pids = pids + done;
		sel.npids = npids - done;
		done = npids;
		rc = capstore_scan(cs, &sel, collect, &cl, q->cancel, q->cancel_arg);
		if (rc < 0)
			goto fail;
		if (!node) {
			if (cl.nnodes > 1) {
				int o = snprintf(
					err, errlen,
					"pid %u was captured on %d nodes in that range (node ids",
					q->pid, cl.nnodes);
				for (int i = 0; i < cl.nnodes && o > 0 && (size_t)o < errlen; i++)
					o += snprintf(err + o, errlen - (size_t)o, " %" PRIu64,
						      cl.nodes[i]);
				if (o > 0 && (size_t)o < errlen)
					snprintf(err + o, errlen - (size_t)o,
						 "): say which with node=");
				rc = -ENOTUNIQ;
				goto fail;
			}
			if (cl.nnodes == 1) {
				node = cl.nodes[0];
				sel.node = node;
			}
		}
		for (size_t i = 0; i < cl.n; i++) {
			const struct kp_cap_rec *c = cl.v[i].r;
			if (node && cl.v[i].node != node)
				continue;
			if (c->kind == KP_CAP_FORK && !(c->flags & KP_CAP_F_THREAD) &&
			    !has_pid(pids, npids, (uint32_t)c->args[1]) && npids < MAX_PIDS)
				pids[npids++] = (uint32_t)c->args[1];
		}
	}
	if (!node || !cl.n) {
		snprintf(err, errlen,
			 "nothing was captured for pid %u between %" PRIu64 " and %" PRIu64
			 " (epoch ns): replay capture is off by default; select the process with "
			 "replay.capture.comms=NAME (or .pids, .cgroups) on its node's agent",
			 q->pid, q->from_ns, q->to_ns);
		rc = -ENOENT;
		goto fail;
	}
	/* records of another node that reused one of the tree's pids are not ours */
	size_t kept = 0;
	for (size_t i = 0; i < cl.n; i++) {
		if (cl.v[i].node == node)
			cl.v[kept++] = cl.v[i];
		else
			free(cl.v[i].r);
	}
	cl.n = kept;
	ntree = npids;

	/* 2. peers: the other side of the tree's connections, captured on the same node */
	struct tuples *tu = xcalloc(1, sizeof(*tu));
	for (size_t i = 0; i < cl.n && tu->n < MAX_TUPLES; i++) {
		struct kp_cap_sock s;
		if (sock_of(cl.v[i].r, &s))
			tu->v[tu->n++] = s;
	}
	if (tu->n) {
		struct peerscan ps = {tu, pids, &npids, ntree};
		struct capstore_sel all = {node, NULL, 0, q->from_ns, q->to_ns};
		rc = capstore_scan(cs, &all, find_peers, &ps, q->cancel, q->cancel_arg);
		if (rc == 0 && npids > ntree) {
			struct capstore_sel ps_sel = {node, pids + ntree, npids - ntree, q->from_ns,
						      q->to_ns};
			rc = capstore_scan(cs, &ps_sel, collect, &cl, q->cancel, q->cancel_arg);
		}
	}
	free(tu);
	if (rc < 0)
		goto fail;

	/* 3. losses in the kernel around the range */
	struct lostsum lost = {0};
	uint32_t zero = 0;
	struct capstore_sel ls = {node, &zero, 1,
				  q->from_ns > LOST_SLACK ? q->from_ns - LOST_SLACK : 0,
				  q->to_ns + LOST_SLACK};
	capstore_scan(cs, &ls, sum_lost, &lost, q->cancel, q->cancel_arg);

	/* 4. where the recording starts: the root's first exec in the range */
	const struct kp_cap_rec *exec = NULL;
	int64_t root_off = 0;
	bool root_seen = false;
	for (size_t i = 0; i < cl.n; i++) {
		const struct kp_cap_rec *c = cl.v[i].r;
		if (c->pid != q->pid)
			continue;
		if (!root_seen) {
			root_off = cl.v[i].clock_off;
			root_seen = true;
		}
		if (c->kind == KP_CAP_EXEC && c->tid == q->pid &&
		    (!exec || c->ts_exit < exec->ts_exit)) {
			exec = c;
			root_off = cl.v[i].clock_off;
		}
	}
	uint64_t start = exec ? exec->ts_exit : 0;

	struct rec_meta m = {0};
	char *argv[64] = {0}, argbuf[KP_CAP_MAX_AUX + 1] = "", host[256] = "", kernel[128] = "";
	if (exec) {
		size_t al = exec->aux_len, pl = exec->payload_len;
		memcpy(argbuf, kp_cap_aux(exec), al);
		argbuf[al] = 0;
		for (size_t o = 0; o < al && m.argc < 63;) {
			argv[m.argc++] = argbuf + o;
			o += strlen(argbuf + o) + 1;
		}
		if (!m.argc && pl) {
			snprintf(argbuf, sizeof(argbuf), "%.*s", (int)pl, kp_cap_payload(exec));
			argv[m.argc++] = argbuf;
		}
		snprintf(info->argv0, sizeof(info->argv0), "%.*s", (int)pl,
			 (const char *)kp_cap_payload(exec));
	}
	/* cwd and environment: the agent's loader record for that exec */
	char *envp[REC_MAX_ENV + 1];
	m.cwd = "";
	for (size_t i = 0; exec && i < cl.n; i++) {
		const struct kp_cap_rec *l = cl.v[i].r;
		if (l->kind != KP_CAP_LOADER || l->pid != q->pid || l->ts_exit != exec->ts_exit ||
		    !l->payload_len)
			continue;
		envbuf = xmalloc(l->payload_len + 1);
		memcpy(envbuf, kp_cap_payload(l), l->payload_len);
		envbuf[l->payload_len] = 0;
		m.cwd = envbuf;
		size_t o = strlen(envbuf) + 1;
		while (o < l->payload_len && m.envc < REC_MAX_ENV) {
			if (envbuf[o])
				envp[m.envc++] = envbuf + o;
			o += strlen(envbuf + o) + 1;
		}
		break;
	}
	m.envp = envp;
	m.argv = argv;
	m.root_tid = q->pid;
	m.root_status = -1;
	m.dropped = lost.n;
	if (q->node_names)
		q->node_names(q->names_ctx, node, host, sizeof(host), kernel, sizeof(kernel));
	m.host = host;
	m.kernel = kernel;

	/* 5. the writer: everything kept, with what the metadata needs picked up on the way */
	w = rec_writer_new();
	add_loader_fallbacks(w, &cl, q->pid, start);
	uint64_t mono_lo = UINT64_MAX, mono_hi = 0;
	bool std_seen[3] = {false, false, false};
	for (size_t i = 0; i < cl.n; i++) {
		struct kp_cap_rec *c = cl.v[i].r;
		if (c->pid == q->pid && start && c->ts_exit < start)
			continue; /* before the exec that starts the recording */
		if (c->kind == KP_CAP_EXIT && c->tid == q->pid) {
			m.root_status = (int32_t)c->ret;
			info->exit_seen = true;
		}
		if (c->kind == KP_CAP_CALL && c->pid == q->pid && c->args[0] < 3 && c->fd_ino &&
		    !std_seen[c->args[0]]) {
			std_seen[c->args[0]] = true;
			m.std[c->args[0]].ino = c->fd_ino;
		}
		if (c->kind == KP_CAP_CALL && (c->flags & KP_CAP_F_TRUNC))
			m.max_bytes = KP_MAX(m.max_bytes, c->payload_len);
		uint64_t t0 = c->ts_enter && c->ts_enter < c->ts_exit ? c->ts_enter : c->ts_exit;
		mono_lo = KP_MIN(mono_lo, t0);
		mono_hi = KP_MAX(mono_hi, c->ts_exit);
		if (rec_writer_add(w, c, c->len) < 0)
			continue;
		if (c->kind == KP_CAP_CALL) {
			info->calls++;
			info->payload_bytes += c->payload_len;
		}
		uint64_t te = c->ts_exit + (uint64_t)cl.v[i].clock_off;
		info->first_ns = info->first_ns ? KP_MIN(info->first_ns, te) : te;
		info->last_ns = KP_MAX(info->last_ns, te);
	}
	if (mono_lo == UINT64_MAX) {
		snprintf(err, errlen,
			 "nothing of pid %u is left in that range once the records "
			 "before its exec are set aside",
			 q->pid);
		rc = -ENOENT;
		goto fail;
	}
	m.mono_base = mono_lo;
	m.real_base = mono_lo + (uint64_t)root_off;
	m.boot_base = mono_lo; /* not carried; only a suspended machine tells them apart */
	m.mono_end = mono_hi;
	if (!m.max_bytes)
		m.max_bytes = KP_CAP_MAX_PAYLOAD;
	if (!m.argc) {
		snprintf(argbuf, sizeof(argbuf), "pid-%u", q->pid);
		argv[m.argc++] = argbuf;
	}
	rec_writer_meta(w, &m);
	struct rec_summary sum;
	rc = rec_writer_finish_mem(w, out, &sum, err, errlen);
	if (rc < 0)
		goto fail;
	if (out->len > cl.max_bytes) {
		rc = -E2BIG;
		goto toobig;
	}
	info->node = node;
	info->file_bytes = out->len;
	info->threads = sum.threads;
	info->processes = sum.processes;
	info->lost = lost.n;
	info->exec_seen = exec != NULL;
	info->argc = m.argc;
	int o = 0;
	if (!exec)
		o += snprintf(info->note + o, sizeof(info->note) - (size_t)o,
			      "no exec of pid %u in the range: the process started before it, so a "
			      "replay (which starts the command afresh) leaves the script at once; "
			      "widen the range to its start. ",
			      q->pid);
	if (lost.n && o >= 0 && (size_t)o < sizeof(info->note))
		o += snprintf(info->note + o, sizeof(info->note) - (size_t)o,
			      "%" PRIu64 " capture records were lost in the kernel around then "
			      "(ring buffer full): the recording is marked incomplete. ",
			      lost.n);
	rec_writer_free(w);
	coll_free(&cl);
	free(envbuf);
	return 0;
fail:
	if (rc == -E2BIG || cl.over) {
	toobig:
		rc = -E2BIG;
		snprintf(err, errlen,
			 "the recording of pid %u in that range would be larger than %" PRIu64
			 " MiB (replay.api.maxRecordingMb): narrow the time range",
			 q->pid, q->max_bytes >> 20);
	}
	rec_writer_free(w);
	coll_free(&cl);
	free(envbuf);
	return rc;
}

/* ------------------------------------------------------------------ incidents */

#define FIND_MAX 256

struct findctx {
	uint32_t pid;
	uint64_t node;
	uint64_t execs[FIND_MAX], exits[FIND_MAX];
	int nexec, nexit;
	uint64_t n, first_ns, last_ns;
	/* the command line of the latest exec at or before `upto` (the one the range starts at) */
	uint64_t upto, argv_ts;
	char argv[KP_CAP_MAX_AUX + 1];
	size_t argv_len;
};

static int find_cb(void *ctx, uint64_t node, int64_t clock_off, const struct kp_cap_rec *c)
{
	struct findctx *f = ctx;
	uint64_t t = c->ts_exit + (uint64_t)clock_off;
	if (!f->node)
		f->node = node;
	if (node != f->node)
		return 0;
	f->n++;
	f->first_ns = f->first_ns ? KP_MIN(f->first_ns, t) : t;
	f->last_ns = KP_MAX(f->last_ns, t);
	if (c->kind == KP_CAP_EXEC && c->tid == f->pid && f->nexec < FIND_MAX) {
		f->execs[f->nexec++] = t;
		size_t al = c->aux_len;
		if (t <= f->upto && t >= f->argv_ts && al <= KP_CAP_MAX_AUX &&
		    KP_CAP_HDR_LEN + (size_t)c->payload_len + al <= c->len) {
			memcpy(f->argv, kp_cap_aux(c), al);
			f->argv[al] = 0;
			f->argv_len = al;
			f->argv_ts = t;
		}
	}
	if (c->kind == KP_CAP_EXIT && c->tid == f->pid && f->nexit < FIND_MAX)
		f->exits[f->nexit++] = t;
	return 0;
}

int capstore_find_process(struct capstore *cs, uint64_t node, uint32_t pid, uint64_t from_ns,
			  uint64_t to_ns, uint64_t lookback_ns, uint64_t lookahead_ns,
			  uint64_t *rnode, uint64_t *rfrom, uint64_t *rto)
{
	struct capstore_found fd;
	int rc = capstore_find_process_info(cs, node, pid, from_ns, to_ns, lookback_ns,
					    lookahead_ns, &fd);
	if (rc == 1) {
		*rnode = fd.node;
		*rfrom = fd.from_ns;
		*rto = fd.to_ns;
	}
	return rc;
}

int capstore_find_process_info(struct capstore *cs, uint64_t node, uint32_t pid, uint64_t from_ns,
			       uint64_t to_ns, uint64_t lookback_ns, uint64_t lookahead_ns,
			       struct capstore_found *out)
{
	memset(out, 0, sizeof(*out));
	struct findctx *f = xcalloc(1, sizeof(*f));
	f->pid = pid;
	f->node = node;
	f->upto = from_ns + NSEC_PER_MSEC;
	uint64_t lo = from_ns > lookback_ns ? from_ns - lookback_ns : 0;
	struct capstore_sel sel = {node, &pid, 1, lo, to_ns + lookahead_ns};
	int rc = capstore_scan(cs, &sel, find_cb, f, NULL, NULL);
	if (rc < 0 || !f->n)
		goto out;
	/* the process alive during [from, to]: its latest exec before from (spans and kernel
	 * clocks may disagree by a little: 1 ms of slack), and its first exit after that */
	const uint64_t slack = NSEC_PER_MSEC;
	uint64_t exec = 0, exit = 0;
	for (int i = 0; i < f->nexec; i++)
		if (f->execs[i] <= from_ns + slack && f->execs[i] > exec)
			exec = f->execs[i];
	for (int i = 0; i < f->nexit; i++)
		if (f->exits[i] >= exec && (!exit || f->exits[i] < exit))
			exit = f->exits[i];
	if (exit && exit + slack < from_ns)
		goto out; /* that process ended before the incident: another one had the pid */
	if (!exec && f->last_ns + slack < from_ns)
		goto out;
	out->node = f->node;
	out->from_ns = exec ? exec : KP_MAX(f->first_ns, lo);
	out->to_ns = exit ? exit : KP_MIN(f->last_ns, to_ns + lookahead_ns);
	out->records = f->n;
	out->exec_seen = exec != 0;
	out->exit_seen = exit != 0;
	/* argv as NUL-separated strings; an unterminated tail (cut at KP_CAP_MAX_AUX) is dropped */
	if (exec && f->argv_ts == exec) {
		for (size_t o = 0; o < f->argv_len && out->argc < CAPSTORE_FOUND_ARGS;) {
			size_t n = strnlen(f->argv + o, f->argv_len - o);
			if (o + n >= f->argv_len)
				break;
			out->argv[out->argc++] = out->argv_buf + o;
			o += n + 1;
		}
		memcpy(out->argv_buf, f->argv, f->argv_len);
	}
	rc = 1;
out:
	free(f);
	return rc;
}
