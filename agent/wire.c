/*
 * wire.c - encodes and decodes agent frames (layout diagram in wire.h).
 *
 * Both ends are little-endian (x86-64, arm64); the header is still written field by field so
 * its layout does not depend on struct packing.
 */
#include <errno.h>
#include <lz4.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/le.h"
#include "agent/wire.h"

const char *wire_strerror(int err)
{
	switch (err) {
	case 0:
		return "ok";
	case WIRE_EMAGIC:
		return "bad magic (not a kprobe frame)";
	case WIRE_EVERSION:
		return "unsupported frame version";
	case WIRE_ETOOBIG:
		return "length over the frame bounds";
	case WIRE_ECHECKSUM:
		return "body checksum mismatch";
	case WIRE_EDECOMPRESS:
		return "body does not decompress to its stated length";
	case WIRE_ELAYOUT:
		return "body layout does not match the header counts";
	case WIRE_EMETA:
		return "malformed metadata record";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}


void wire_batch_add_meta(struct wire_batch *b, uint16_t kind, const void *payload, uint16_t len)
{
	uint8_t h[4];
	le_put16(h, kind);
	le_put16(h + 2, len);
	buf_append(&b->meta, h, 4);
	buf_append(&b->meta, payload, len);
	b->n_meta++;
}

static void put_str(struct kp_buf *o, const char *s, size_t max)
{
	size_t n = strnlen(s, max);
	uint8_t h[2];
	le_put16(h, (uint16_t)n);
	buf_append(o, h, 2);
	buf_append(o, s, n);
}

void wire_batch_add_proc(struct wire_batch *b, const struct wire_proc *p)
{
	struct kp_buf o = {0};
	struct wire_proc_fixed f = {p->pid, p->ppid, p->start_ns, p->cgroup_id};
	buf_append(&o, &f, sizeof(f));
	put_str(&o, p->comm, sizeof(p->comm));
	put_str(&o, p->cmdline, sizeof(p->cmdline));
	put_str(&o, p->cgroup, sizeof(p->cgroup));
	put_str(&o, p->container, sizeof(p->container));
	put_str(&o, p->pod, sizeof(p->pod));
	put_str(&o, p->ns, sizeof(p->ns));
	put_str(&o, p->service, sizeof(p->service));
	/* Bounded by the field sizes: 24 + 7*2 + 16+512+256+72+128+64+64 < WIRE_META_MAX_LEN. */
	wire_batch_add_meta(b, WIRE_META_PROC, o.data, (uint16_t)o.len);
	buf_free(&o);
}

void wire_batch_add_conn(struct wire_batch *b, const struct wire_conn *c)
{
	wire_batch_add_meta(b, WIRE_META_CONN, c, sizeof(*c));
}

void wire_batch_add_node(struct wire_batch *b, const char *name, const char *kernel)
{
	struct kp_buf o = {0};
	put_str(&o, name, 255);
	put_str(&o, kernel, 255);
	wire_batch_add_meta(b, WIRE_META_NODE, o.data, (uint16_t)o.len);
	buf_free(&o);
}

void wire_batch_add_file(struct wire_batch *b, const struct wire_file *f)
{
	struct kp_buf o = {0};
	uint8_t fixed[16];
	le_put32(fixed, f->pid);
	le_put32(fixed + 4, f->fd);
	le_put64(fixed + 8, f->inode);
	buf_append(&o, fixed, sizeof(fixed));
	put_str(&o, f->path, sizeof(f->path));
	wire_batch_add_meta(b, WIRE_META_FILE, o.data, (uint16_t)o.len);
	buf_free(&o);
}

/*
 * Capture pieces: one check shared by the encoder's tests, the body validator and the
 * assembler. *rec_len == 0 means no record is in progress. Returns 1 when the piece completes
 * its record, 0 when more must follow, WIRE_EMETA when it does not fit the sequence.
 */
static int cap_piece_check(uint32_t *rec_len, uint32_t *next, int64_t *clock_off, const uint8_t *p,
			   uint16_t len)
{
	if (len <= WIRE_CAP_PIECE_HDR)
		return WIRE_EMETA;
	uint32_t rl = le_get32(p), off = le_get32(p + 4), n = (uint32_t)len - WIRE_CAP_PIECE_HDR;
	int64_t co = (int64_t)le_get64(p + 8);
	if (*rec_len == 0) {
		if (off != 0 || rl < KP_CAP_HDR_LEN || rl > KP_CAP_REC_MAX || rl % 8 ||
		    n < KP_CAP_HDR_LEN || le_get32(p + WIRE_CAP_PIECE_HDR) != rl)
			return WIRE_EMETA;
		*rec_len = rl;
		*clock_off = co;
	} else if (rl != *rec_len || off != *next || co != *clock_off) {
		return WIRE_EMETA;
	}
	if (n > rl - off)
		return WIRE_EMETA;
	*next = off + n;
	if (*next < rl)
		return 0;
	*rec_len = *next = 0;
	return 1;
}

int wire_batch_add_capture(struct wire_batch *b, const void *rec, uint32_t len, int64_t clock_off)
{
	if (len < KP_CAP_HDR_LEN || len > KP_CAP_REC_MAX || len % 8)
		return WIRE_ETOOBIG;
	uint8_t piece[WIRE_META_MAX_LEN];
	int n = 0;
	for (uint32_t off = 0; off < len; off += WIRE_CAP_PIECE_MAX, n++) {
		uint32_t k = KP_MIN(len - off, (uint32_t)WIRE_CAP_PIECE_MAX);
		le_put32(piece, len);
		le_put32(piece + 4, off);
		le_put64(piece + 8, (uint64_t)clock_off);
		memcpy(piece + WIRE_CAP_PIECE_HDR, (const uint8_t *)rec + off, k);
		wire_batch_add_meta(b, WIRE_META_CAPTURE, piece,
				    (uint16_t)(WIRE_CAP_PIECE_HDR + k));
	}
	return n;
}

void wire_cap_asm_reset(struct wire_cap_asm *a)
{
	a->rec_len = a->have = 0;
	a->clock_off = 0;
}

int wire_cap_piece(struct wire_cap_asm *a, const void *payload, uint16_t len)
{
	uint32_t rl = a->rec_len, next = a->have;
	int64_t co = a->clock_off;
	int r = cap_piece_check(&rl, &next, &co, payload, len);
	if (r < 0) {
		wire_cap_asm_reset(a);
		return r;
	}
	const uint8_t *p = payload;
	uint32_t total = le_get32(p), off = le_get32(p + 4), n = (uint32_t)len - WIRE_CAP_PIECE_HDR;
	memcpy(a->buf + off, p + WIRE_CAP_PIECE_HDR, n); /* off + n <= total <= KP_CAP_REC_MAX */
	a->clock_off = co;
	if (r == 1) {
		a->rec_len = total;
		a->have = total;
		return 1;
	}
	a->rec_len = rl;
	a->have = next;
	return 0;
}

void wire_batch_reset(struct wire_batch *b)
{
	b->events.len = 0;
	b->meta.len = 0;
	b->n_events = b->n_meta = 0;
}

void wire_batch_free(struct wire_batch *b)
{
	buf_free(&b->events);
	buf_free(&b->meta);
	b->n_events = b->n_meta = 0;
}

int wire_frame_encode(const struct wire_batch *b, uint64_t node_id, uint64_t seq, int compress,
		      struct kp_buf *out)
{
	size_t raw_len = b->events.len + b->meta.len;
	if (b->n_events > WIRE_MAX_EVENTS || b->n_meta > WIRE_MAX_META || raw_len > WIRE_MAX_RAW)
		return WIRE_ETOOBIG;
	int bound = LZ4_compressBound((int)raw_len);
	buf_reserve(out, WIRE_HDR_LEN + (size_t)bound + raw_len + 1);
	uint8_t *h = (uint8_t *)out->data + out->len;
	uint8_t *body = h + WIRE_HDR_LEN;
	uint16_t flags = 0;
	size_t body_len = raw_len;

	/* The body must be contiguous for one LZ4 block: events then meta. When the meta part is
	 * empty (most frames), compress straight from the event buffer. */
	const char *src = b->events.data;
	char *joined = NULL;
	if (b->meta.len) {
		joined = xmalloc(raw_len);
		memcpy(joined, b->events.data, b->events.len);
		memcpy(joined + b->events.len, b->meta.data, b->meta.len);
		src = joined;
	}
	if (compress && raw_len) {
		int n = LZ4_compress_default(src, (char *)body, (int)raw_len, bound);
		if (n > 0 && (size_t)n < raw_len) {
			flags |= WIRE_F_LZ4;
			body_len = (size_t)n;
		}
	}
	if (!(flags & WIRE_F_LZ4) && raw_len)
		memcpy(body, src, raw_len);
	free(joined);

	le_put32(h, WIRE_MAGIC);
	le_put16(h + 4, WIRE_VERSION);
	le_put16(h + 6, flags);
	le_put64(h + 8, node_id);
	le_put64(h + 16, seq);
	le_put32(h + 24, b->n_events);
	le_put32(h + 28, b->n_meta);
	le_put32(h + 32, (uint32_t)raw_len);
	le_put32(h + 36, (uint32_t)body_len);
	le_put64(h + 40, XXH3_64bits(body, body_len));
	out->len += WIRE_HDR_LEN + body_len;
	return 0;
}

int wire_hdr_decode(const void *p, struct wire_hdr *h)
{
	const uint8_t *b = p;
	h->magic = le_get32(b);
	h->version = le_get16(b + 4);
	h->flags = le_get16(b + 6);
	h->node_id = le_get64(b + 8);
	h->seq = le_get64(b + 16);
	h->n_events = le_get32(b + 24);
	h->n_meta = le_get32(b + 28);
	h->raw_len = le_get32(b + 32);
	h->body_len = le_get32(b + 36);
	h->checksum = le_get64(b + 40);
	if (h->magic != WIRE_MAGIC)
		return WIRE_EMAGIC;
	if (h->version != WIRE_VERSION)
		return WIRE_EVERSION;
	if (h->n_events > WIRE_MAX_EVENTS || h->n_meta > WIRE_MAX_META ||
	    h->raw_len > WIRE_MAX_RAW || h->body_len > WIRE_MAX_BODY)
		return WIRE_ETOOBIG;
	if ((uint64_t)h->n_events * sizeof(struct kp_event) + (uint64_t)h->n_meta * 4 > h->raw_len)
		return WIRE_ELAYOUT;
	if (!(h->flags & WIRE_F_LZ4) && h->body_len != h->raw_len)
		return WIRE_ELAYOUT;
	if (h->flags & ~WIRE_F_LZ4)
		return WIRE_ELAYOUT;
	return 0;
}

int wire_body_decode(const struct wire_hdr *h, const void *body, void *raw, size_t rawcap)
{
	if (h->raw_len > rawcap)
		return WIRE_ETOOBIG;
#ifndef KP_FUZZ /* the fuzzer cannot forge checksums; let it reach the decoder behind them */
	if (XXH3_64bits(body, h->body_len) != h->checksum)
		return WIRE_ECHECKSUM;
#endif
	if (h->flags & WIRE_F_LZ4) {
		int n = LZ4_decompress_safe(body, raw, (int)h->body_len, (int)h->raw_len);
		if (n < 0 || (uint32_t)n != h->raw_len)
			return WIRE_EDECOMPRESS;
	} else {
		memcpy(raw, body, h->raw_len);
	}
	/* Layout: the meta records must exactly fill the rest, each within bounds, and capture
	 * pieces must add up to whole records. */
	const uint8_t *p = (const uint8_t *)raw + (size_t)h->n_events * sizeof(struct kp_event);
	const uint8_t *end = (const uint8_t *)raw + h->raw_len;
	uint32_t cap_len = 0, cap_next = 0;
	int64_t cap_clock = 0;
	for (uint32_t i = 0; i < h->n_meta; i++) {
		if (end - p < 4)
			return WIRE_ELAYOUT;
		uint16_t kind = le_get16(p), len = le_get16(p + 2);
		if (len > WIRE_META_MAX_LEN || end - p - 4 < len)
			return WIRE_ELAYOUT;
		if (kind == WIRE_META_CAPTURE) {
			if (cap_piece_check(&cap_len, &cap_next, &cap_clock, p + 4, len) < 0)
				return WIRE_EMETA;
		} else if (cap_len) {
			return WIRE_EMETA; /* a record cut by another kind */
		}
		p += 4 + len;
	}
	if (p != end)
		return WIRE_ELAYOUT;
	if (cap_len)
		return WIRE_EMETA; /* the frame ends inside a record */
	/* Event types out of range are not trusted further down. */
	const struct kp_event *ev = raw;
	for (uint32_t i = 0; i < h->n_events; i++)
		if (ev[i].type == KP_NONE || ev[i].type >= KP_TYPE_MAX)
			return WIRE_ELAYOUT;
	return 0;
}

int wire_meta_next(struct wire_meta_iter *it, uint16_t *kind, const void **payload,
		   uint16_t *len)
{
	if (it->end - it->p < 4)
		return 0;
	*kind = le_get16(it->p);
	*len = le_get16(it->p + 2);
	if (it->end - it->p - 4 < *len)
		return 0; /* NEVER after wire_body_decode */
	*payload = it->p + 4;
	it->p += 4 + *len;
	return 1;
}

static int get_str(const uint8_t **p, const uint8_t *end, char *dst, size_t cap)
{
	if (end - *p < 2)
		return WIRE_EMETA;
	uint16_t n = le_get16(*p);
	*p += 2;
	if (end - *p < n)
		return WIRE_EMETA;
	size_t c = n < cap - 1 ? n : cap - 1;
	memcpy(dst, *p, c);
	dst[c] = '\0';
	*p += n;
	return 0;
}

int wire_proc_decode(const void *payload, uint16_t len, struct wire_proc *p)
{
	const uint8_t *b = payload, *end = b + len;
	memset(p, 0, sizeof(*p));
	if (len < sizeof(struct wire_proc_fixed))
		return WIRE_EMETA;
	struct wire_proc_fixed f;
	memcpy(&f, b, sizeof(f));
	b += sizeof(f);
	p->pid = f.pid;
	p->ppid = f.ppid;
	p->start_ns = f.start_ns;
	p->cgroup_id = f.cgroup_id;
	if (get_str(&b, end, p->comm, sizeof(p->comm)) ||
	    get_str(&b, end, p->cmdline, sizeof(p->cmdline)) ||
	    get_str(&b, end, p->cgroup, sizeof(p->cgroup)) ||
	    get_str(&b, end, p->container, sizeof(p->container)) ||
	    get_str(&b, end, p->pod, sizeof(p->pod)) || get_str(&b, end, p->ns, sizeof(p->ns)) ||
	    get_str(&b, end, p->service, sizeof(p->service)))
		return WIRE_EMETA;
	return 0;
}

int wire_conn_decode(const void *payload, uint16_t len, struct wire_conn *c)
{
	if (len != sizeof(*c))
		return WIRE_EMETA;
	memcpy(c, payload, sizeof(*c));
	return 0;
}

int wire_file_decode(const void *payload, uint16_t len, struct wire_file *f)
{
	const uint8_t *b = payload, *end = b + len;
	memset(f, 0, sizeof(*f));
	if (len < 16)
		return WIRE_EMETA;
	f->pid = le_get32(b);
	f->fd = le_get32(b + 4);
	f->inode = le_get64(b + 8);
	b += 16;
	return get_str(&b, end, f->path, sizeof(f->path));
}

int wire_node_decode(const void *payload, uint16_t len, char *name, size_t namecap, char *kernel,
		     size_t kernelcap)
{
	const uint8_t *b = payload, *end = b + len;
	if (get_str(&b, end, name, namecap) || get_str(&b, end, kernel, kernelcap))
		return WIRE_EMETA;
	return 0;
}

void wire_ack_encode(void *out16, uint64_t seq, uint32_t status)
{
	uint8_t *b = out16;
	le_put32(b, WIRE_ACK_MAGIC);
	le_put32(b + 4, status);
	le_put64(b + 8, seq);
}

int wire_ack_decode(const void *in16, uint64_t *seq, uint32_t *status)
{
	const uint8_t *b = in16;
	if (le_get32(b) != WIRE_ACK_MAGIC)
		return WIRE_EMAGIC;
	*status = le_get32(b + 4);
	*seq = le_get64(b + 8);
	return *status <= WIRE_ACK_BAD ? 0 : WIRE_ELAYOUT;
}
