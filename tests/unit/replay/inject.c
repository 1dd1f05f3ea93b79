/* Tests replay/inject.c: --delay / --fail parsing and outcome naming. */
#include <errno.h>
#include <sys/wait.h>

#include "replay/replay.h"
#include "replay/sysc.h"
#include "tests/test.h"

TEST(replay_inj_parse_forms)
{
	struct replay_inj j;
	char err[256];
	CHECK_EQ_INT(
		replay_inj_parse("recvfrom:fd=3:nth=2:+800ms", REPLAY_DELAY, &j, err, sizeof(err)),
		0);
	CHECK_EQ_INT(j.nr, sysc_by_name("recvfrom")->nr);
	CHECK_EQ_INT(j.fd, 3);
	CHECK_EQ_INT(j.nth, 2);
	CHECK_EQ_UINT(j.delay_ns, 800000000ull);
	CHECK_EQ_INT(replay_inj_parse("poll:+1.5s", REPLAY_DELAY, &j, err, sizeof(err)), 0);
	CHECK_EQ_INT(j.fd, -1);
	CHECK_EQ_INT(j.nth, 0);
	CHECK_EQ_UINT(j.delay_ns, 1500000000ull);
	CHECK_EQ_INT(replay_inj_parse("fsync:EIO", REPLAY_FAIL, &j, err, sizeof(err)), 0);
	CHECK_EQ_INT(j.err, EIO);
	CHECK_EQ_INT(replay_inj_parse("connect:nth=1:111", REPLAY_FAIL, &j, err, sizeof(err)), 0);
	CHECK_EQ_INT(j.err, 111);
	CHECK_EQ_INT(j.nth, 1);
}

TEST(replay_inj_parse_errors)
{
	struct replay_inj j;
	char err[256];
	CHECK(replay_inj_parse("nosuchcall:+1s", REPLAY_DELAY, &j, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "nosuchcall");
	CHECK(replay_inj_parse("read:1s", REPLAY_DELAY, &j, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "+DURATION");
	CHECK(replay_inj_parse("read:+1parsec", REPLAY_DELAY, &j, err, sizeof(err)) < 0);
	CHECK(replay_inj_parse("fsync:EWHAT", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "EWHAT");
	CHECK(replay_inj_parse("fsync:nth=0:EIO", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
	CHECK(replay_inj_parse("fsync:fd=x:EIO", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
	CHECK(replay_inj_parse("fsync:bogus=1:EIO", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
	CHECK(replay_inj_parse("fsync", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
	CHECK(replay_inj_parse(":::::::::::", REPLAY_FAIL, &j, err, sizeof(err)) < 0);
}

TEST(replay_outcome_names)
{
	char b[128];
	replay_outcome_str(0, "timeout", b, sizeof(b));
	CHECK_EQ_STR(b, "succeeded");
	replay_outcome_str(1 << 8, "timeout", b, sizeof(b));
	CHECK_EQ_STR(b, "failed (timeout)");
	replay_outcome_str(3 << 8, "", b, sizeof(b));
	CHECK_EQ_STR(b, "failed (exit 3)");
	replay_outcome_str(9, "", b, sizeof(b));
	CHECK_EQ_STR(b, "killed (SIGKILL)");
}
