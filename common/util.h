/*
 * util.h - small things every module needs: allocation that aborts on out-of-memory (request
 * paths only; storage and graph code return -ENOMEM), clocks, a growable byte buffer, logging.
 */
#ifndef KP_UTIL_H
#define KP_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define KP_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define KP_MAX(a, b)     ((a) > (b) ? (a) : (b))
#define KP_LIKELY(x)     __builtin_expect(!!(x), 1)
#define KP_UNLIKELY(x)   __builtin_expect(!!(x), 0)

#define NSEC_PER_SEC  1000000000ull
#define NSEC_PER_MSEC 1000000ull
#define NSEC_PER_USEC 1000ull

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

uint64_t now_mono_ns(void); /* CLOCK_MONOTONIC */
uint64_t now_real_ns(void); /* CLOCK_REALTIME, Unix epoch ns */

/* A growable byte buffer. Out-of-memory aborts. */
struct kp_buf {
	char *data;
	size_t len, cap;
};
void buf_reserve(struct kp_buf *b, size_t extra);
void buf_append(struct kp_buf *b, const void *p, size_t n);
void buf_puts(struct kp_buf *b, const char *s);
void buf_printf(struct kp_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_free(struct kp_buf *b);

/*
 * Logging to stderr: "2026-11-22T10:00:00.123Z kprobe-agent info: message". log_init sets the
 * program name; KPROBE_LOG=debug|info|warn|error sets the level (default info).
 */
enum kp_log_level { KP_LOG_DEBUG, KP_LOG_INFO, KP_LOG_WARN, KP_LOG_ERROR };
void log_init(const char *prog);
/* Heap tuning for long-running servers (kprobed): see util.c. */
void kp_malloc_tune(void);
void log_msg(enum kp_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(KP_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(KP_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(KP_LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(KP_LOG_ERROR, __VA_ARGS__)

/* Parses "250ms", "1.5s", "40us", "100ns", "2m", "1h" into ns. Returns 0 or -EINVAL. */
int parse_duration_ns(const char *s, uint64_t *out);

/* Writes the whole buffer / reads exactly n bytes, retrying on EINTR and short transfers. */
int write_full(int fd, const void *p, size_t n);
int read_full(int fd, void *p, size_t n);

/* mkdir -p. Returns 0 or -errno. */
int mkdir_p(const char *path, unsigned mode);

#endif
