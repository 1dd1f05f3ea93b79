/* Tests replay/model.c: a client whose server answered after it gave up; timelines in both
 * directions, merging with the client's own reads, EOF from the peer's close. */
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include <linux/types.h>

#include "replay/internal.h"
#include "tests/test.h"

static uint8_t buf[KP_CAP_REC_MAX];

static void call(struct rec_writer *w, uint32_t pid, uint16_t nr, uint64_t ts, int64_t ret,
		 uint64_t fd, const char *payload, const struct kp_cap_sock *k)
{
	struct kp_cap_rec *c = (void *)buf;
	uint32_t n = payload ? (uint32_t)strlen(payload) : 0;
	memset(buf, 0, KP_CAP_HDR_LEN + n + KP_CAP_SOCK_LEN + 8);
	c->kind = KP_CAP_CALL;
	c->pid = c->tid = pid;
	c->nr = nr;
	c->ts_enter = ts - 1;
	c->ts_exit = ts;
	c->ret = ret;
	c->args[0] = fd;
	c->args[2] = 4096;
	c->payload_len = n;
	memcpy(buf + KP_CAP_HDR_LEN, payload ? payload : "", n);
	uint32_t len = KP_CAP_HDR_LEN + n;
	if (k) {
		c->flags |= KP_CAP_F_SOCK;
		memcpy(buf + len, k, sizeof(*k));
		len += KP_CAP_SOCK_LEN;
	}
	c->len = (len + 7) & ~7u;
	CHECK_EQ_INT(rec_writer_add(w, c, c->len), 0);
}

TEST(replay_model_peer_timeline)
{
	struct kp_cap_sock
		cl = {.family = AF_INET, .type = SOCK_STREAM, .sport = 40000, .dport = 7000},
		sv = {.family = AF_INET, .type = SOCK_STREAM, .sport = 7000, .dport = 40000};
	cl.saddr[0] = cl.daddr[0] = sv.saddr[0] = sv.daddr[0] = 127;
	cl.saddr[3] = cl.daddr[3] = sv.saddr[3] = sv.daddr[3] = 1;
	struct rec_writer *w = rec_writer_new();
	char *argv[] = {"client", NULL};
	struct rec_meta m = {.root_tid = 10, .argc = 1, .argv = argv, .root_status = -1};
	rec_writer_meta(w, &m);
	call(w, 10, SYS_connect, 100, 0, 3, NULL, &cl);
	call(w, 10, SYS_sendto, 110, 12, 3, "GET balance\n", &cl);
	call(w, 20, SYS_accept, 120, 4, 3, NULL, &sv);
	call(w, 20, SYS_read, 130, 12, 4, "GET balance\n", &sv);
	call(w, 10, SYS_read, 500, 4, 3, "answ", &cl); /* the client read a little, early */
	call(w, 20, SYS_write, 800, 10, 4, "answer 42\n", &sv);
	call(w, 20, SYS_close, 801, 0, 4, NULL, NULL);
	char err[256], path[512];
	snprintf(path, sizeof(path), "%s/m.kprc", kt_tmpdir());
	CHECKF(rec_writer_finish(w, path, NULL, err, sizeof(err)) == 0, "%s", err);
	rec_writer_free(w);
	struct rec *r;
	CHECKF(rec_open(&r, path, err, sizeof(err)) == 0, "%s", err);
	struct replay__model *md;
	CHECK_EQ_INT(replay__model_build(&md, r, err, sizeof(err)), 0);
	CHECK_EQ_INT(md->neps, 2);
	int ce = replay__model_find(md, &cl), se = replay__model_find(md, &sv);
	CHECK(ce >= 0 && se >= 0);
	CHECK_EQ_INT(md->eps[ce].peer, se);
	/* client side: 10 bytes from the server; the first 4 read at 500 (before the send was
	 * recorded? no: the send is at 800, the client's own read says 4 bytes were there by 500)
	 */
	CHECK_EQ_UINT(md->eps[ce].in_total, 10);
	CHECK_EQ_UINT(replay__model_avail(md, ce, 499), 0);
	CHECK_EQ_UINT(replay__model_avail(md, ce, 500), 4);
	CHECK_EQ_UINT(replay__model_avail(md, ce, 799), 4);
	CHECK_EQ_UINT(replay__model_avail(md, ce, 800), 10);
	CHECK_EQ_UINT(replay__model_arrival(md, ce, 0), 500);
	CHECK_EQ_UINT(replay__model_arrival(md, ce, 6), 800);
	CHECK_EQ_UINT(md->eps[ce].in_eof_t, 801);
	uint8_t out[16];
	CHECK(replay__model_bytes(md, ce, 0, 10, out));
	CHECK(!memcmp(out, "answer 42\n", 10));
	/* server side: the request, at the client's send time */
	CHECK_EQ_UINT(md->eps[se].in_total, 12);
	CHECK_EQ_UINT(replay__model_avail(md, se, 110), 12);
	replay__model_free(md);
	rec_close(r);
}
