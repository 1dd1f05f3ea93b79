/*
 * test.h - the one test framework for kprobe's C tests (unit and integration).
 *
 *     TEST(config_defaults) { CHECK_EQ_INT(cfg.api_port, 8080); }
 *     TEST_BPF(capture_write) { ... }            // needs root + BTF; SKIP otherwise
 *     TEST_SLOW(ingest_crash, 120) { ... }       // own timeout in seconds
 *
 * Every test runs in a forked child, in its own process group, under a timeout (default 60 s);
 * the runner kills the whole group afterwards, so servers a test started never outlive it. A
 * failed CHECK prints the expression and both values and ends the test. SKIP(reason) ends it as
 * skipped; under KPROBE_REQUIRE_BPF=1 a skip of a TEST_BPF test counts as a failure.
 */
#ifndef KP_TEST_H
#define KP_TEST_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define KT_BPF 0x1

typedef void (*kt_fn)(void);
void kt_register(const char *name, const char *file, kt_fn fn, unsigned flags, int timeout_s);
void kt_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));
void kt_skip(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
void kt_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Skips unless root with BTF and BPF (the message names what is missing). */
void kt_require_bpf(void);

/* A scratch directory for this test (removed afterwards unless KPROBE_KEEP_TMP=1). */
const char *kt_tmpdir(void);
/* The project root (where bin/ lives). */
const char *kt_root(void);

#define KT_DEFINE(name, flags, timeout)                                                            \
	static void test_##name(void);                                                             \
	__attribute__((constructor)) static void kt_reg_##name(void)                               \
	{                                                                                          \
		kt_register(#name, __FILE__, test_##name, flags, timeout);                         \
	}                                                                                          \
	static void test_##name(void)

#define TEST(name)          KT_DEFINE(name, 0, 60)
#define TEST_SLOW(name, s)  KT_DEFINE(name, 0, s)
#define TEST_BPF(name)      KT_DEFINE(name, KT_BPF, 120)
#define TEST_BPF_SLOW(name, s) KT_DEFINE(name, KT_BPF, s)

#define SKIP(...) kt_skip(__VA_ARGS__)

#define CHECK(expr)                                                                                \
	do {                                                                                       \
		if (!(expr))                                                                       \
			kt_fail(__FILE__, __LINE__, "CHECK(%s)", #expr);                           \
	} while (0)

#define CHECKF(expr, ...)                                                                          \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			char kt_m_[1024];                                                          \
			snprintf(kt_m_, sizeof(kt_m_), __VA_ARGS__);                               \
			kt_fail(__FILE__, __LINE__, "CHECK(%s): %s", #expr, kt_m_);                \
		}                                                                                  \
	} while (0)

#define KT_CMP_INT(a, op, b)                                                                       \
	do {                                                                                       \
		long long kt_a_ = (long long)(a), kt_b_ = (long long)(b);                          \
		if (!(kt_a_ op kt_b_))                                                             \
			kt_fail(__FILE__, __LINE__, "%s %s %s: %lld vs %lld", #a, #op, #b, kt_a_,  \
				kt_b_);                                                            \
	} while (0)

#define KT_CMP_UINT(a, op, b)                                                                      \
	do {                                                                                       \
		unsigned long long kt_a_ = (unsigned long long)(a),                                \
				   kt_b_ = (unsigned long long)(b);                                \
		if (!(kt_a_ op kt_b_))                                                             \
			kt_fail(__FILE__, __LINE__, "%s %s %s: %llu vs %llu", #a, #op, #b, kt_a_,  \
				kt_b_);                                                            \
	} while (0)

#define CHECK_EQ_INT(a, b) KT_CMP_INT(a, ==, b)
#define CHECK_NE_INT(a, b) KT_CMP_INT(a, !=, b)
#define CHECK_LT_INT(a, b) KT_CMP_INT(a, <, b)
#define CHECK_LE_INT(a, b) KT_CMP_INT(a, <=, b)
#define CHECK_GT_INT(a, b) KT_CMP_INT(a, >, b)
#define CHECK_GE_INT(a, b) KT_CMP_INT(a, >=, b)
#define CHECK_EQ_UINT(a, b) KT_CMP_UINT(a, ==, b)
#define CHECK_GE_UINT(a, b) KT_CMP_UINT(a, >=, b)

#define CHECK_EQ_STR(a, b)                                                                         \
	do {                                                                                       \
		const char *kt_a_ = (a), *kt_b_ = (b);                                             \
		if (!kt_a_ || !kt_b_ || strcmp(kt_a_, kt_b_) != 0)                                 \
			kt_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", #a, #b,          \
				kt_a_ ? kt_a_ : "(null)", kt_b_ ? kt_b_ : "(null)");               \
	} while (0)

#define CHECK_CONTAINS(hay, needle)                                                                \
	do {                                                                                       \
		const char *kt_h_ = (hay), *kt_n_ = (needle);                                      \
		if (!kt_h_ || !strstr(kt_h_, kt_n_))                                               \
			kt_fail(__FILE__, __LINE__, "%s contains \"%s\": got \"%.400s\"", #hay,    \
				kt_n_, kt_h_ ? kt_h_ : "(null)");                                  \
	} while (0)

#endif
