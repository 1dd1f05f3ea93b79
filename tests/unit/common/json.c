/* Tests common/json.c: escaping, parsing, 64-bit integers, and bounded failure on bad input. */
#include <stdlib.h>

#include "common/json.h"
#include "tests/test.h"

TEST(json_escape)
{
	struct kp_buf b = {0};
	json_str(&b, "a\"b\\c\n\x01\xc3\xa9\xff", 10);
	CHECK_EQ_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\xc3\xa9\xef\xbf\xbd\"");
	buf_free(&b);
}

TEST(json_parse_values)
{
	const char *t = "{\"a\": [1, -2.5, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {\"c\": true, \"d\": null},"
			" \"big\": \"18446744073709551615\", \"n\": 1700000000123456789}";
	struct json *r;
	char err[128];
	size_t pos;
	struct json_doc *d = json_parse(t, strlen(t), &r, err, sizeof(err), &pos);
	CHECKF(d != NULL, "%s", err);
	CHECK_EQ_INT(r->type, JSON_OBJ);
	const struct json *a = json_get(r, "a");
	CHECK(a && a->type == JSON_ARR && a->u.arr.n == 3);
	CHECK(a->u.arr.items[1]->u.num.d == -2.5);
	CHECK_EQ_STR(a->u.arr.items[2]->u.str.s, "x\xc3\xa9\xf0\x9f\x98\x80");
	CHECK(json_get(json_get(r, "b"), "c")->u.b);
	CHECK_EQ_INT(json_get(json_get(r, "b"), "d")->type, JSON_NULL);
	uint64_t u;
	CHECK_EQ_INT(json_uint(json_get(r, "big"), &u), 0);
	CHECK_EQ_UINT(u, 18446744073709551615ull);
	int64_t i;
	CHECK_EQ_INT(json_int(json_get(r, "n"), &i), 0);
	CHECK_EQ_INT(i, 1700000000123456789ll);
	json_free(d);
}

TEST(json_rejects_bad_input)
{
	const char *bad[] = {"", "{", "[1,]", "{\"a\" 1}", "\"abc", "tru", "01x", "[1] 2",
			     "{\"a\":\"\\q\"}", "\"\x01\"", "-", "{1:2}", "[\"\\u12\"]"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json *r;
		char err[128];
		size_t pos = 999;
		struct json_doc *d = json_parse(bad[i], strlen(bad[i]), &r, err, sizeof(err), &pos);
		CHECKF(d == NULL, "accepted '%s'", bad[i]);
		CHECK_CONTAINS(err, "at byte");
		CHECK_LE_INT(pos, strlen(bad[i]));
	}
	/* Depth is bounded. */
	char deep[1000];
	memset(deep, '[', sizeof(deep));
	struct json *r;
	char err[128];
	size_t pos;
	CHECK(json_parse(deep, sizeof(deep), &r, err, sizeof(err), &pos) == NULL);
	CHECK_CONTAINS(err, "nesting too deep");
}
