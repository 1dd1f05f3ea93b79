/*
 * meta.c - process and connection metadata for the agent's events: /proc and cgroup reading,
 * container / Kubernetes recognition from cgroup paths, service rules, and two bounded LRU
 * tables (pid -> process, conn id -> connection) with a direct-mapped pid cache in front.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/meta.h"
#include "bpf/connid.h"
#include "common/util.h"

#define NIL UINT32_MAX

/* ------------------------------------------------------------------ a bounded LRU table */

/*
 * Entries live in one array (esize bytes each); an open-addressing index (linear probing,
 * backward-shift deletion, twice as many slots as entries) maps a u64 key to an entry; a
 * doubly linked list through the entries orders them by use, the tail goes first when full.
 */
struct lru {
	uint32_t cap, used, mask;
	uint32_t *slot; /* entry index + 1, 0 = empty */
	uint64_t *key;	/* per entry */
	uint32_t *prev, *next;
	uint32_t head, tail, free_head;
	size_t esize;
	char *data;
};

static void lru_init(struct lru *l, uint32_t cap, size_t esize)
{
	uint32_t slots = 1;
	while (slots < cap * 2)
		slots <<= 1;
	l->cap = cap;
	l->used = 0;
	l->mask = slots - 1;
	l->slot = xcalloc(slots, sizeof(*l->slot));
	l->key = xcalloc(cap, sizeof(*l->key));
	l->prev = xcalloc(cap, sizeof(*l->prev));
	l->next = xcalloc(cap, sizeof(*l->next));
	l->esize = esize;
	l->data = xcalloc(cap, esize); /* untouched pages cost no memory until used */
	l->head = l->tail = NIL;
	for (uint32_t i = 0; i < cap; i++)
		l->next[i] = i + 1 < cap ? i + 1 : NIL;
	l->free_head = 0;
}

static void lru_free(struct lru *l)
{
	free(l->slot);
	free(l->key);
	free(l->prev);
	free(l->next);
	free(l->data);
}

static inline void *lru_at(const struct lru *l, uint32_t i)
{
	return l->data + (size_t)i * l->esize;
}

static inline uint32_t lru_hash(const struct lru *l, uint64_t key)
{
	return (uint32_t)kp_mix64(key) & l->mask;
}

static void lru_unlink(struct lru *l, uint32_t i)
{
	if (l->prev[i] != NIL)
		l->next[l->prev[i]] = l->next[i];
	else
		l->head = l->next[i];
	if (l->next[i] != NIL)
		l->prev[l->next[i]] = l->prev[i];
	else
		l->tail = l->prev[i];
}

static void lru_push_front(struct lru *l, uint32_t i)
{
	l->prev[i] = NIL;
	l->next[i] = l->head;
	if (l->head != NIL)
		l->prev[l->head] = i;
	l->head = i;
	if (l->tail == NIL)
		l->tail = i;
}

static inline void lru_touch(struct lru *l, uint32_t i)
{
	if (l->head == i)
		return;
	lru_unlink(l, i);
	lru_push_front(l, i);
}

/* The slot holding entry i's key, or NIL. */
static uint32_t lru_slot_of(const struct lru *l, uint64_t key)
{
	for (uint32_t s = lru_hash(l, key);; s = (s + 1) & l->mask) {
		uint32_t v = l->slot[s];
		if (!v)
			return NIL;
		if (l->key[v - 1] == key)
			return s;
	}
}

static uint32_t lru_find(struct lru *l, uint64_t key)
{
	uint32_t s = lru_slot_of(l, key);
	if (s == NIL)
		return NIL;
	uint32_t i = l->slot[s] - 1;
	lru_touch(l, i);
	return i;
}

/* Removes entry i (its index slot, list links) and returns it to the free list. */
static void lru_remove(struct lru *l, uint32_t i)
{
	uint32_t s = lru_slot_of(l, l->key[i]);
	if (s == NIL)
		return; /* defensive: every live entry has a slot */
	/* backward-shift deletion keeps every probe chain unbroken */
	uint32_t hole = s;
	for (uint32_t j = (hole + 1) & l->mask; l->slot[j]; j = (j + 1) & l->mask) {
		uint32_t home = lru_hash(l, l->key[l->slot[j] - 1]);
		/* j's entry may move to the hole if its home is not in (hole, j] cyclically */
		bool in_between =
			hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
		if (!in_between) {
			l->slot[hole] = l->slot[j];
			hole = j;
		}
	}
	l->slot[hole] = 0;
	lru_unlink(l, i);
	l->next[i] = l->free_head;
	l->free_head = i;
	l->used--;
	memset(lru_at(l, i), 0, l->esize);
}

/* Inserts key (not present) and returns its zeroed entry; evicts the least recently used entry
 * when full (its key in *evicted, else *evicted = 0 and *did_evict = false). */
static uint32_t lru_insert(struct lru *l, uint64_t key, bool *did_evict, uint64_t *evicted)
{
	*did_evict = false;
	if (l->free_head == NIL) {
		uint32_t victim = l->tail;
		*evicted = l->key[victim];
		*did_evict = true;
		lru_remove(l, victim);
	}
	uint32_t i = l->free_head;
	l->free_head = l->next[i];
	l->key[i] = key;
	memset(lru_at(l, i), 0, l->esize);
	uint32_t s = lru_hash(l, key);
	while (l->slot[s])
		s = (s + 1) & l->mask;
	l->slot[s] = i + 1;
	lru_push_front(l, i);
	l->used++;
	return i;
}

/* ------------------------------------------------------------------ cgroup paths */

static bool all_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool starts(const char *s, size_t n, const char *prefix)
{
	size_t p = strlen(prefix);
	return n >= p && !memcmp(s, prefix, p);
}

static void copy_n(char *dst, size_t cap, const char *src, size_t n)
{
	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = 0;
}

/* A container id in one path component: "<64hex>", "docker-<id>.scope", "cri-containerd-<id>
 * .scope", "crio-<id>.scope", "libpod-<id>.scope", "...slice:cri-containerd:<id>"; conmon
 * scopes (crio-conmon-, libpod-conmon-) are not containers. */
static bool component_container(const char *c, size_t n, char *out, size_t cap)
{
	const char *colon = memchr(c, ':', n);
	while (colon) { /* "kubepods-...slice:cri-containerd:<id>": the id is after the last ':' */
		n -= (size_t)(colon + 1 - c);
		c = colon + 1;
		colon = memchr(c, ':', n);
	}
	if (n > 6 && !memcmp(c + n - 6, ".scope", 6))
		n -= 6;
	static const char *const conmon[] = {"crio-conmon-", "libpod-conmon-", "conmon-"};
	for (size_t i = 0; i < KP_ARRAY_SIZE(conmon); i++)
		if (starts(c, n, conmon[i]))
			return false;
	static const char *const prefixes[] = {"docker-", "cri-containerd-", "crio-", "libpod-",
					       "containerd-"};
	for (size_t i = 0; i < KP_ARRAY_SIZE(prefixes); i++) {
		size_t p = strlen(prefixes[i]);
		if (starts(c, n, prefixes[i]) && n - p == 64 && all_hex(c + p, 64)) {
			copy_n(out, cap, c + p, 64);
			return true;
		}
	}
	if (n == 64 && all_hex(c, 64)) {
		copy_n(out, cap, c, 64);
		return true;
	}
	return false;
}

/* "kubepods[-burstable|-besteffort][-pod<uid>].slice" (systemd driver). */
static void component_kubepods_slice(const char *c, size_t n, struct meta_cgroup *out)
{
	if (n > 6 && !memcmp(c + n - 6, ".slice", 6))
		n -= 6;
	const char *p = c + 8; /* after "kubepods" */
	size_t rest = n - 8;
	if (starts(p, rest, "-burstable")) {
		snprintf(out->qos, sizeof(out->qos), "burstable");
		p += 10;
		rest -= 10;
	} else if (starts(p, rest, "-besteffort")) {
		snprintf(out->qos, sizeof(out->qos), "besteffort");
		p += 11;
		rest -= 11;
	}
	if (starts(p, rest, "-pod") && rest > 4)
		copy_n(out->pod, sizeof(out->pod), p + 4, rest - 4);
}

void meta_cgroup_parse(const char *path, struct meta_cgroup *out)
{
	memset(out, 0, sizeof(*out));
	if (!path)
		return;
	bool in_kubepods = false; /* cgroupfs driver: /kubepods[/burstable|/besteffort]/pod<uid> */
	const char *c = path;
	while (*c) {
		while (*c == '/')
			c++;
		if (!*c)
			break;
		const char *end = strchr(c, '/');
		size_t n = end ? (size_t)(end - c) : strlen(c);
		bool colon = memchr(c, ':', n) != NULL;
		if (!colon && starts(c, n, "kubepods") && (n == 8 || c[8] == '-' || c[8] == '.')) {
			if (n == 8)
				in_kubepods = true;
			else
				component_kubepods_slice(c, n, out);
		} else if (in_kubepods && n == 9 && !memcmp(c, "burstable", 9)) {
			snprintf(out->qos, sizeof(out->qos), "burstable");
		} else if (in_kubepods && n == 10 && !memcmp(c, "besteffort", 10)) {
			snprintf(out->qos, sizeof(out->qos), "besteffort");
		} else if (in_kubepods && starts(c, n, "pod") && n > 3) {
			copy_n(out->pod, sizeof(out->pod), c + 3, n - 3);
			in_kubepods = false;
		} else {
			/* a slice:runtime:id tail may also carry the pod slice before the ':' */
			const char *cp = memchr(c, ':', n);
			if (cp && starts(c, (size_t)(cp - c), "kubepods-"))
				component_kubepods_slice(c, (size_t)(cp - c), out);
			char id[72];
			if (component_container(c, n, id, sizeof(id)))
				snprintf(out->container, sizeof(out->container), "%s", id);
		}
		c += n;
	}
	if (!out->pod[0])
		out->qos[0] = 0; /* a QoS slice alone is not a pod */
	else if (!out->qos[0])
		snprintf(out->qos, sizeof(out->qos), "guaranteed");
}

int meta_cgroup_pick(const char *text, char *path, size_t pathlen)
{
	char v2[4096] = "";
	bool have_v2 = false;
	path[0] = 0;
	for (const char *l = text; l && *l;) {
		const char *nl = strchr(l, '\n');
		size_t n = nl ? (size_t)(nl - l) : strlen(l);
		const char *c1 = memchr(l, ':', n);
		const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - l)) : NULL;
		if (c2) {
			const char *ctl = c1 + 1, *p = c2 + 1;
			size_t ctln = (size_t)(c2 - ctl), pn = n - (size_t)(p - l);
			if (ctln == 0 && c1 - l == 1 && l[0] == '0') {
				copy_n(v2, sizeof(v2), p, pn);
				have_v2 = true;
			} else {
				/* controller lists are comma separated: "memory" or "cpu,memory" */
				for (const char *t = ctl; t < c2;) {
					const char *comma = memchr(t, ',', (size_t)(c2 - t));
					size_t tn = comma ? (size_t)(comma - t) : (size_t)(c2 - t);
					if (tn == 6 && !memcmp(t, "memory", 6)) {
						copy_n(path, pathlen, p, pn);
						return 2;
					}
					t += tn + 1;
				}
			}
		}
		l = nl ? nl + 1 : NULL;
	}
	if (have_v2) {
		snprintf(path, pathlen, "%s", v2);
		return 1;
	}
	return 0;
}

/* ------------------------------------------------------------------ the tables */

struct pent {
	struct wire_proc p;
	uint64_t sent_ns; /* last handed out as fresh; 0 = never */
	uint64_t exit_ns; /* 0 = alive */
	bool loaded;	  /* /proc was read (or found gone) since the last exec */
	bool dirty;	  /* changed since it was last sent */
	char qos[16];
};

struct cent {
	struct wire_conn c;
	uint64_t sent_ns, closed_ns;
	bool dirty;
};

struct rule {
	bool cgroup; /* match the cgroup path, else the comm */
	char *glob, *name;
};

#define PID_CACHE 1024

struct meta {
	struct lru procs, conns;
	struct {
		uint32_t pid, idx;
	} cache[PID_CACHE];
	struct rule *rules;
	int nrules;
	uint64_t resend_ns;
	size_t cmdline_bytes;
	uint64_t boot_epoch_ns, tick_ns;
	char v2_mount[256], memory_mount[256];
	struct meta_stats st;
	/* the last process looked up: events come in runs of one process, and the table's LRU
	 * bookkeeping per event is what a run can skip (reset whenever an entry may move) */
	uint32_t last_pid;
	struct pent *last_e;
};

/* Finds the cgroup v2 mount and the v1 memory controller's mount in /proc/self/mountinfo. */
static void find_mounts(struct meta *m)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f)
		return;
	char line[2048];
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts [tags] - fstype source superopts */
		char mnt[512];
		if (sscanf(line, "%*s %*s %*s %*s %511s", mnt) != 1)
			continue;
		const char *dash = strstr(line, " - ");
		if (!dash)
			continue;
		char fstype[64], src[256], sopts[1024];
		if (sscanf(dash + 3, "%63s %255s %1023s", fstype, src, sopts) < 2)
			continue;
		if (!strcmp(fstype, "cgroup2") && !m->v2_mount[0])
			snprintf(m->v2_mount, sizeof(m->v2_mount), "%.250s", mnt);
		if (!strcmp(fstype, "cgroup") && !m->memory_mount[0]) {
			char *save = NULL;
			for (char *t = strtok_r(sopts, ",", &save); t;
			     t = strtok_r(NULL, ",", &save))
				if (!strcmp(t, "memory"))
					snprintf(m->memory_mount, sizeof(m->memory_mount), "%.250s",
						 mnt);
		}
	}
	fclose(f);
}

int meta_open(struct meta **out, const struct kp_config *cfg, char *err, size_t errlen)
{
	struct meta *m = xcalloc(1, sizeof(*m));
	for (int i = 0; i < PID_CACHE; i++)
		m->cache[i].idx = NIL;
	m->rules = xcalloc((size_t)cfg->agent_service_rules.n + 1, sizeof(*m->rules));
	for (int i = 0; i < cfg->agent_service_rules.n; i++) {
		const char *r = cfg->agent_service_rules.v[i];
		const char *eq = strrchr(r, '=');
		bool cg = !strncmp(r, "cgroup:", 7), cm = !strncmp(r, "comm:", 5);
		const char *glob = r + (cg ? 7 : 5);
		if ((!cg && !cm) || !eq || eq <= glob || !eq[1]) {
			snprintf(err, errlen,
				 "agent.serviceRules: '%s' is not 'comm:GLOB=name' or "
				 "'cgroup:GLOB=name'",
				 r);
			for (int j = 0; j < m->nrules; j++) {
				free(m->rules[j].glob);
				free(m->rules[j].name);
			}
			free(m->rules);
			free(m);
			return -EINVAL;
		}
		m->rules[m->nrules++] =
			(struct rule){cg, xstrndup(glob, (size_t)(eq - glob)), xstrdup(eq + 1)};
	}
	m->resend_ns = (uint64_t)cfg->agent_meta_resend_sec * NSEC_PER_SEC;
	m->cmdline_bytes = (size_t)cfg->agent_cmdline_bytes;
	if (m->cmdline_bytes > sizeof(((struct wire_proc *)0)->cmdline) - 1)
		m->cmdline_bytes = sizeof(((struct wire_proc *)0)->cmdline) - 1;
	struct timespec bt;
	clock_gettime(CLOCK_BOOTTIME, &bt);
	m->boot_epoch_ns =
		now_real_ns() - ((uint64_t)bt.tv_sec * NSEC_PER_SEC + (uint64_t)bt.tv_nsec);
	long hz = sysconf(_SC_CLK_TCK);
	m->tick_ns = hz > 0 ? NSEC_PER_SEC / (uint64_t)hz : 10 * NSEC_PER_MSEC;
	find_mounts(m);
	lru_init(&m->procs, META_MAX_PROCS, sizeof(struct pent));
	lru_init(&m->conns, META_MAX_CONNS, sizeof(struct cent));
	*out = m;
	return 0;
}

void meta_close(struct meta *m)
{
	if (!m)
		return;
	lru_free(&m->procs);
	lru_free(&m->conns);
	for (int i = 0; i < m->nrules; i++) {
		free(m->rules[i].glob);
		free(m->rules[i].name);
	}
	free(m->rules);
	free(m);
}

/* ------------------------------------------------------------------ reading /proc */

static ssize_t read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = 0;
	while ((size_t)n < cap - 1) {
		ssize_t r = read(fd, buf + n, cap - 1 - (size_t)n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	close(fd);
	buf[n] = 0;
	return n;
}

static void set_service(const struct meta *m, struct pent *e)
{
	for (int i = 0; i < m->nrules; i++) {
		const struct rule *r = &m->rules[i];
		if (!fnmatch(r->glob, r->cgroup ? e->p.cgroup : e->p.comm, 0)) {
			copy_n(e->p.service, sizeof(e->p.service), r->name, strlen(r->name));
			return;
		}
	}
	const char *svc = e->p.pod[0] ? e->p.pod : e->p.comm;
	copy_n(e->p.service, sizeof(e->p.service), svc, strlen(svc));
}

static void set_cgroup(struct meta *m, struct pent *e, const char *path, int kind)
{
	snprintf(e->p.cgroup, sizeof(e->p.cgroup), "%s", path);
	struct meta_cgroup cg;
	meta_cgroup_parse(path, &cg);
	snprintf(e->p.container, sizeof(e->p.container), "%s", cg.container);
	snprintf(e->p.pod, sizeof(e->p.pod), "%s", cg.pod);
	snprintf(e->p.ns, sizeof(e->p.ns), "%s", cg.ns);
	snprintf(e->qos, sizeof(e->qos), "%s", cg.qos);
	e->p.cgroup_id = 0;
	const char *mnt = kind == 2 ? m->memory_mount : kind == 1 ? m->v2_mount : "";
	if (mnt[0]) {
		char dir[600];
		struct stat st;
		snprintf(dir, sizeof(dir), "%s%s", mnt, path);
		if (!stat(dir, &st))
			e->p.cgroup_id = st.st_ino; /* the cgroup's kernfs id */
	}
}

/* Reads /proc/PID/{stat,cmdline,cgroup} into e. Returns 0, or -ENOENT when the process is gone
 * (e keeps what it had). */
static int proc_load(struct meta *m, struct pent *e)
{
	char path[64], buf[4096];
	uint32_t pid = e->p.pid;
	m->st.proc_reads++;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	ssize_t n = read_small(path, buf, sizeof(buf));
	if (n <= 0) {
		m->st.proc_gone++;
		return -ENOENT;
	}
	/* "pid (comm) state ppid ... starttime(22)"; comm may hold ')' and spaces */
	char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
	if (!lp || !rp || rp < lp)
		return -EINVAL;
	copy_n(e->p.comm, sizeof(e->p.comm), lp + 1, (size_t)(rp - lp - 1));
	char *f = rp + 2;
	unsigned long long v[20] = {0};
	int field = 3; /* f points at field 3 (state) */
	for (char *save = NULL, *t = strtok_r(f, " ", &save); t && field <= 22;
	     t = strtok_r(NULL, " ", &save), field++) {
		if (field == 4)
			v[0] = strtoull(t, NULL, 10);
		if (field == 22)
			v[1] = strtoull(t, NULL, 10);
	}
	e->p.ppid = (uint32_t)v[0];
	e->p.start_ns = m->boot_epoch_ns + v[1] * m->tick_ns;

	snprintf(path, sizeof(path), "/proc/%u/cmdline", pid);
	n = read_small(path, buf, KP_MIN(sizeof(buf), m->cmdline_bytes + 1));
	if (n > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (!buf[i])
				buf[i] = ' ';
		while (n > 0 && buf[n - 1] == ' ')
			n--;
		copy_n(e->p.cmdline, sizeof(e->p.cmdline), buf, (size_t)n);
	} else {
		e->p.cmdline[0] = 0; /* kernel threads have none */
	}

	snprintf(path, sizeof(path), "/proc/%u/cgroup", pid);
	if (read_small(path, buf, sizeof(buf)) > 0) {
		char cg[256];
		int kind = meta_cgroup_pick(buf, cg, sizeof(cg));
		set_cgroup(m, e, cg, kind);
	}
	set_service(m, e);
	return 0;
}

/* ------------------------------------------------------------------ processes */

static struct pent *proc_get(struct meta *m, uint32_t pid, bool create)
{
	uint32_t c = pid & (PID_CACHE - 1);
	uint32_t i = NIL;
	if (m->cache[c].pid == pid && m->cache[c].idx != NIL &&
	    m->procs.key[m->cache[c].idx] == pid &&
	    ((struct pent *)lru_at(&m->procs, m->cache[c].idx))->p.pid == pid) {
		i = m->cache[c].idx;
		lru_touch(&m->procs, i);
	} else {
		i = lru_find(&m->procs, pid);
		if (i == NIL) {
			if (!create)
				return NULL;
			m->last_pid = 0; /* an insert may evict the entry the fast path holds */
			m->last_e = NULL;
			bool ev;
			uint64_t old;
			i = lru_insert(&m->procs, pid, &ev, &old);
			if (ev) {
				m->st.proc_evicted++;
				uint32_t oc = (uint32_t)old & (PID_CACHE - 1);
				if (m->cache[oc].pid == (uint32_t)old)
					m->cache[oc].idx = NIL;
			}
			struct pent *e = lru_at(&m->procs, i);
			e->p.pid = pid;
			e->dirty = true;
		}
		m->cache[c].pid = pid;
		m->cache[c].idx = i;
	}
	return lru_at(&m->procs, i);
}

const struct wire_proc *meta_proc(struct meta *m, uint32_t pid, uint64_t now_ns, int *fresh)
{
	*fresh = 0;
	if (!pid)
		return NULL;
	struct pent *e;
	if (KP_LIKELY(pid == m->last_pid && m->last_e)) {
		e = m->last_e;
	} else {
		e = proc_get(m, pid, true);
		m->last_pid = pid;
		m->last_e = e;
	}
	if (KP_UNLIKELY(!e->loaded)) {
		e->loaded = true;
		if (proc_load(m, e) == 0)
			e->dirty = true;
		else if (e->p.comm[0] && !e->p.service[0])
			set_service(m, e);
	}
	if (KP_UNLIKELY(!e->p.comm[0]))
		return NULL; /* gone before we could read it, and no event named it */
	if (e->dirty || (int64_t)(now_ns - e->sent_ns) >= (int64_t)m->resend_ns) {
		e->dirty = false;
		e->sent_ns = now_ns;
		*fresh = 1;
	}
	return &e->p;
}

void meta_proc_event(struct meta *m, const struct kp_event *ev, uint64_t now_ns)
{
	char comm[16];
	memcpy(comm, &ev->arg[2], 16);
	comm[15] = 0;
	switch (ev->arg[0]) {
	case KP_PROC_EXEC: {
		struct pent *e = proc_get(m, ev->pid, true);
		e->exit_ns = 0;
		e->loaded =
			false; /* re-read on the next lookup: cmdline and maybe cgroup changed */
		e->dirty = true;
		snprintf(e->p.comm, sizeof(e->p.comm), "%s", comm);
		if (ev->arg[1])
			e->p.ppid = (uint32_t)ev->arg[1];
		e->p.service[0] = 0;
		e->p.cmdline[0] = 0;
		break;
	}
	case KP_PROC_FORK: {
		if (ev->flags & KP_F_THREAD)
			break;
		uint32_t child = (uint32_t)ev->arg[1];
		struct pent *parent = proc_get(m, ev->pid, false);
		struct wire_proc pp;
		bool have_parent = parent != NULL;
		if (have_parent)
			pp = parent->p; /* copy: inserting the child may evict the parent */
		struct pent *e = proc_get(m, child, true);
		/* a reused pid: whatever was known belongs to the old process */
		memset(&e->p, 0, sizeof(e->p));
		e->p.pid = child;
		e->p.ppid = ev->pid;
		e->p.start_ns = ev->ts_ns;
		snprintf(e->p.comm, sizeof(e->p.comm), "%s", comm);
		if (have_parent) {
			memcpy(e->p.cmdline, pp.cmdline, sizeof(pp.cmdline));
			memcpy(e->p.cgroup, pp.cgroup, sizeof(pp.cgroup));
			e->p.cgroup_id = pp.cgroup_id;
			memcpy(e->p.container, pp.container, sizeof(pp.container));
			memcpy(e->p.pod, pp.pod, sizeof(pp.pod));
			memcpy(e->p.ns, pp.ns, sizeof(pp.ns));
		}
		set_service(m, e);
		e->exit_ns = 0;
		e->loaded = false;
		e->dirty = true;
		break;
	}
	case KP_PROC_EXIT: {
		if (ev->flags & KP_F_THREAD)
			break;
		struct pent *e = proc_get(m, ev->pid, true);
		if (!e->p.comm[0]) {
			snprintf(e->p.comm, sizeof(e->p.comm), "%s", comm);
			e->dirty = true;
		}
		e->exit_ns = now_ns ? now_ns : 1;
		break;
	}
	}
}

/* ------------------------------------------------------------------ connections */

const struct wire_conn *meta_conn_update(struct meta *m, const struct kp_conn_record *r,
					 uint64_t now_ns, int *fresh)
{
	uint64_t id = r->ev.arg[0];
	uint32_t i = lru_find(&m->conns, id);
	struct cent *e;
	struct wire_conn c = {
		.conn = id,
		.family = (uint16_t)(r->ev.arg[3] >> 32),
		.sport = (uint16_t)r->ev.arg[3],
		.dport = (uint16_t)(r->ev.arg[3] >> 16),
	};
	memcpy(c.saddr, r->saddr, 16);
	memcpy(c.daddr, r->daddr, 16);
	if (i == NIL) {
		bool ev;
		uint64_t old;
		i = lru_insert(&m->conns, id, &ev, &old);
		if (ev)
			m->st.conn_evicted++;
		e = lru_at(&m->conns, i);
		e->c = c;
		e->dirty = true;
	} else {
		e = lru_at(&m->conns, i);
		/* the other end of the same connection reports it mirrored: not a change */
		bool same =
			e->c.family == c.family &&
			((e->c.sport == c.sport && e->c.dport == c.dport &&
			  !memcmp(e->c.saddr, c.saddr, 16) && !memcmp(e->c.daddr, c.daddr, 16)) ||
			 (e->c.sport == c.dport && e->c.dport == c.sport &&
			  !memcmp(e->c.saddr, c.daddr, 16) && !memcmp(e->c.daddr, c.saddr, 16)));
		if (!same) {
			e->c = c;
			e->dirty = true;
		}
	}
	if (r->ev.arg[2] == 7 /* TCP_CLOSE */)
		e->closed_ns = now_ns ? now_ns : 1;
	else
		e->closed_ns = 0;
	*fresh = 0;
	if (e->dirty || (int64_t)(now_ns - e->sent_ns) >= (int64_t)m->resend_ns) {
		e->dirty = false;
		e->sent_ns = now_ns;
		*fresh = 1;
	}
	return &e->c;
}

const struct wire_conn *meta_conn(struct meta *m, uint64_t conn, uint64_t now_ns, int *fresh)
{
	*fresh = 0;
	uint32_t i = lru_find(&m->conns, conn);
	if (i == NIL)
		return NULL;
	struct cent *e = lru_at(&m->conns, i);
	if (e->dirty || (int64_t)(now_ns - e->sent_ns) >= (int64_t)m->resend_ns) {
		e->dirty = false;
		e->sent_ns = now_ns;
		*fresh = 1;
	}
	return &e->c;
}

/* ------------------------------------------------------------------ expiry, stats */

void meta_expire(struct meta *m, uint64_t now_ns)
{
	m->last_pid = 0; /* entries go below */
	m->last_e = NULL;
	for (uint32_t i = m->procs.tail; i != NIL;) {
		uint32_t prev = m->procs.prev[i];
		struct pent *e = lru_at(&m->procs, i);
		if (e->exit_ns && now_ns > e->exit_ns + META_GRACE_NS) {
			uint32_t c = e->p.pid & (PID_CACHE - 1);
			if (m->cache[c].idx == i)
				m->cache[c].idx = NIL;
			lru_remove(&m->procs, i);
		}
		i = prev;
	}
	for (uint32_t i = m->conns.tail; i != NIL;) {
		uint32_t prev = m->conns.prev[i];
		struct cent *e = lru_at(&m->conns, i);
		if (e->closed_ns && now_ns > e->closed_ns + META_GRACE_NS)
			lru_remove(&m->conns, i);
		i = prev;
	}
}

void meta_stats(const struct meta *m, struct meta_stats *out)
{
	*out = m->st;
	out->procs = m->procs.used;
	out->conns = m->conns.used;
}
