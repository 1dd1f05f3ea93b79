/*
 * Fuzz target: kprobed's ingest connection parser (store/ingest.c) on arbitrary byte streams,
 * delivered in chunks of a size the input chooses, through the same receive-buffer management
 * (growth, compaction), header bounds, body decoding, dedup and WAL appends as a live
 * connection. Built with -DKP_FUZZ, so body checksums do not stop it at the door.
 *
 * Input: byte 0 picks the chunk size, the rest is the stream from one peer.
 */
// fuzz-sources: agent/wire.c agent/loop.c common/util.c store/wal.c
// fuzz-libs: -llz4 -lxxhash -luring
#include <stdlib.h>

#include "store/ingest.c"

static struct ingest *g_in;
static unsigned g_runs;
static char g_dir[64];

static void cleanup(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	if (system(cmd) != 0) {
		/* best effort */
	}
}

static void setup(void)
{
	setenv("KPROBE_LOG", "error", 1);
	log_init("fuzz");
	snprintf(g_dir, sizeof(g_dir), "/dev/shm/kprobe-fuzz-ingest-XXXXXX");
	char *dir = mkdtemp(g_dir);
	if (!dir)
		abort();
	atexit(cleanup);
	struct wal_opts wo = {.file_max_bytes = 1 << 20};
	struct wal *w;
	if (wal_open(&w, dir, &wo, NULL) != 0)
		abort();
	g_in = xcalloc(1, sizeof(*g_in));
	g_in->wal = w;
	if (loop_init(&g_in->loop, 64) != 0)
		abort();
	g_in->o.max_conns = 16;
	g_in->o.frame_timeout_ms = 1000;
	g_in->o.max_pending_bytes = 1ull << 40;
	/* The commit timer is armed once and never runs: appends stay pending until the
	 * upkeep below syncs and delivers them. */
	g_in->o.commit_us = 1000000;
	g_in->commit_timer = (struct loop_timer){.fn = on_commit_timer, .ctx = g_in};
	g_in->lfd = g_in->efd = -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_in)
		setup();
	if (!size)
		return 0;
	size_t chunk = 1 + (size_t)data[0] * 97;
	data++, size--;

	struct conn *c = xcalloc(1, sizeof(*c));
	c->in = g_in;
	c->fd = -1;
	snprintf(c->peer, sizeof(c->peer), "fuzz");
	c->rbuf = xmalloc(RBUF_INIT);
	c->rcap = RBUF_INIT;
	g_in->conns = c;
	g_in->nconns = 1;
	int alive = 1;
	while (size && alive) {
		size_t room = conn_rbuf_prepare(c);
		if (!room)
			abort(); /* the parser must always make progress possible */
		size_t n = KP_MIN(KP_MIN(room, chunk), size);
		memcpy(c->rbuf + c->rlen, data, n);
		c->rlen += n;
		data += n;
		size -= n;
		alive = conn_parse(c) == 0;
		if (alive && c->rlen >= c->rcap)
			abort();
	}
	if (!alive && g_in->conns == c && !c->send_op.pending)
		abort(); /* closed with nothing in flight: it must be gone */
	if (g_in->conns == c) {
		/* Ops queued here (an ack send) never complete: this harness runs no loop. */
		c->closing = 1;
		c->send_op.pending = c->recv_op.pending = 0;
		conn_maybe_free(c);
	}

	/* Upkeep: make appends durable, hand them over, keep the WAL small. */
	if (++g_runs % 64 == 0 && !wal_failed(g_in->wal)) {
		wal_sync(g_in->wal);
		release_durable(g_in);
		wal_release(g_in->wal, wal_durable_lsn(g_in->wal));
	}
	return 0;
}
