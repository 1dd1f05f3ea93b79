/*
 * config.c - parses kprobe.conf and --set overrides against the key registry in config.h.
 *
 * The registry is expanded into a table of {kind, key, offset, bounds}; parsing is one pass over
 * lines, each "key = value" looked up in the table and checked by kind. Values are replaced
 * atomically per key (a bad value leaves the old one in place).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/util.h"

enum kind { K_BOOL, K_INT, K_STR, K_LIST, K_ENUM };

struct keydef {
	enum kind kind;
	const char *key;
	size_t off;
	int64_t idef;
	const char *sdef;
	int64_t min, max;
	const char *choices;
	const char *help;
};

/* Each kind's X-expansion into a keydef; the unused slots take harmless values. */
#define KD_BOOL(f, key, def, min, max, help)                                                       \
	{K_BOOL, key, offsetof(struct kp_config, f), def, NULL, 0, 1, NULL, help},
#define KD_INT(f, key, def, min, max, help)                                                        \
	{K_INT, key, offsetof(struct kp_config, f), def, NULL, min, max, NULL, help},
#define KD_STR(f, key, def, min, max, help)                                                        \
	{K_STR, key, offsetof(struct kp_config, f), 0, def, 0, 0, NULL, help},
#define KD_LIST(f, key, def, min, max, help)                                                       \
	{K_LIST, key, offsetof(struct kp_config, f), 0, def, 0, 0, NULL, help},
#define KD_ENUM(f, key, def, min, max, help)                                                       \
	{K_ENUM, key, offsetof(struct kp_config, f), 0, NULL, 0, 0, max, help},
#define KD(kind, field, key, def, min, max, help) KD_##kind(field, key, def, min, max, help)

static const struct keydef keys[] = {KP_CONFIG_KEYS(KD)};
#define NKEYS ((int)(sizeof(keys) / sizeof(keys[0])))

int config_key_count(void)
{
	return NKEYS;
}

const char *config_key_name(int i)
{
	return i >= 0 && i < NKEYS ? keys[i].key : NULL;
}

static const struct keydef *find_key(const char *key)
{
	for (int i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].key, key) == 0)
			return &keys[i];
	return NULL;
}

static void strlist_free(struct kp_strlist *l)
{
	for (int i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->n = 0;
	l->v = NULL;
}

/* Splits "a, b ,c" into a list; empty items are skipped. */
static void strlist_parse(struct kp_strlist *l, const char *s)
{
	struct kp_strlist nl = {0, NULL};
	const char *p = s;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		while (len && isspace((unsigned char)*p))
			p++, len--;
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len) {
			nl.v = xrealloc(nl.v, sizeof(char *) * (nl.n + 1));
			nl.v[nl.n++] = xstrndup(p, len);
		}
		if (!e)
			break;
		p = e + 1;
	}
	strlist_free(l);
	*l = nl;
}

/* The first allowed value of an ENUM's "a|b|c" list. */
static char *enum_first(const char *choices)
{
	const char *bar = strchr(choices, '|');
	return xstrndup(choices, bar ? (size_t)(bar - choices) : strlen(choices));
}

static int enum_allowed(const char *choices, const char *v)
{
	size_t vl = strlen(v);
	const char *p = choices;
	while (*p) {
		const char *bar = strchr(p, '|');
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		if (len == vl && memcmp(p, v, len) == 0)
			return 1;
		if (!bar)
			break;
		p = bar + 1;
	}
	return 0;
}

void config_init(struct kp_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (int i = 0; i < NKEYS; i++) {
		const struct keydef *k = &keys[i];
		void *slot = (char *)cfg + k->off;
		switch (k->kind) {
		case K_BOOL:
			*(bool *)slot = k->idef != 0;
			break;
		case K_INT:
			*(int64_t *)slot = k->idef;
			break;
		case K_STR:
			*(char **)slot = xstrdup(k->sdef);
			break;
		case K_LIST:
			strlist_parse(slot, k->sdef);
			break;
		case K_ENUM:
			*(char **)slot = enum_first(k->choices);
			break;
		}
	}
}

void config_free(struct kp_config *cfg)
{
	for (int i = 0; i < NKEYS; i++) {
		void *slot = (char *)cfg + keys[i].off;
		if (keys[i].kind == K_STR || keys[i].kind == K_ENUM)
			free(*(char **)slot);
		else if (keys[i].kind == K_LIST)
			strlist_free(slot);
	}
	free(cfg->path);
	memset(cfg, 0, sizeof(*cfg));
}

/* Integers accept k/m/g (x1000) suffixes? No: plain decimal only; a size or a time that needs a
 * unit carries it in its key name (ringBufferSizeKb, windowMs), as in the original reference. */
static int parse_int(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long x = strtoll(v, &end, 10);
	if (errno || end == v || *end != '\0')
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* Sets one key; where = "FILE:LINE" or "--set" for messages. */
static int set_value(struct kp_config *cfg, const char *key, const char *val, const char *where,
		     char *err, size_t errlen)
{
	const struct keydef *k = find_key(key);
	if (!k) {
		snprintf(err, errlen, "%s: unknown key '%s' (see --help-config for the keys)", where,
			 key);
		return -EINVAL;
	}
	void *slot = (char *)cfg + k->off;
	switch (k->kind) {
	case K_BOOL:
		if (parse_bool(val, slot) < 0) {
			snprintf(err, errlen, "%s: %s: '%s' is not a boolean (use true or false)",
				 where, key, val);
			return -EINVAL;
		}
		return 0;
	case K_INT: {
		int64_t x;
		if (parse_int(val, &x) < 0) {
			snprintf(err, errlen, "%s: %s: '%s' is not an integer", where, key, val);
			return -EINVAL;
		}
		if (x < k->min || x > k->max) {
			snprintf(err, errlen, "%s: %s: %lld is out of range (%lld..%lld)", where, key,
				 (long long)x, (long long)k->min, (long long)k->max);
			return -ERANGE;
		}
		*(int64_t *)slot = x;
		return 0;
	}
	case K_STR:
		free(*(char **)slot);
		*(char **)slot = xstrdup(val);
		return 0;
	case K_LIST:
		strlist_parse(slot, val);
		return 0;
	case K_ENUM:
		if (!enum_allowed(k->choices, val)) {
			snprintf(err, errlen, "%s: %s: '%s' is not one of %s", where, key, val,
				 k->choices);
			return -EINVAL;
		}
		free(*(char **)slot);
		*(char **)slot = xstrdup(val);
		return 0;
	}
	return -EINVAL; /* NEVER: every kind is handled above */
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Splits "key = value  # comment" in place. A value in double quotes keeps '#' and spaces.
 * Returns 0, 1 for a blank/comment line, or -EINVAL with the reason in err.
 */
static int split_line(char *line, char **key, char **val, char *err, size_t errlen,
		      const char *where)
{
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return 1;
	char *eq = strchr(s, '=');
	if (!eq) {
		snprintf(err, errlen, "%s: expected 'key = value', got '%.60s'", where, s);
		return -EINVAL;
	}
	*eq = '\0';
	*key = trim(s);
	char *v = trim(eq + 1);
	if (*v == '"') {
		char *close = strchr(v + 1, '"');
		if (!close) {
			snprintf(err, errlen, "%s: %s: unterminated quote", where, *key);
			return -EINVAL;
		}
		*close = '\0';
		char *rest = trim(close + 1);
		if (*rest && *rest != '#') {
			snprintf(err, errlen, "%s: %s: text after the closing quote", where, *key);
			return -EINVAL;
		}
		*val = v + 1;
	} else {
		char *hash = strchr(v, '#');
		if (hash)
			*hash = '\0';
		*val = trim(v);
	}
	if (**key == '\0') {
		snprintf(err, errlen, "%s: empty key", where);
		return -EINVAL;
	}
	return 0;
}

int config_load_file(struct kp_config *cfg, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: cannot open: %s", path, strerror(e));
		return -e;
	}
	char line[4096], where[PATH_MAX + 32];
	int lineno = 0, rc = 0;
	while (fgets(line, sizeof(line), f)) {
		lineno++;
		snprintf(where, sizeof(where), "%s:%d", path, lineno);
		size_t len = strlen(line);
		if (len == sizeof(line) - 1 && line[len - 1] != '\n') {
			snprintf(err, errlen, "%s: line longer than %zu bytes", where,
				 sizeof(line) - 2);
			rc = -EINVAL;
			break;
		}
		char *key, *val;
		int r = split_line(line, &key, &val, err, errlen, where);
		if (r == 1)
			continue;
		if (r < 0 || (r = set_value(cfg, key, val, where, err, errlen)) < 0) {
			rc = r;
			break;
		}
	}
	fclose(f);
	if (rc == 0) {
		free(cfg->path);
		cfg->path = xstrdup(path);
	}
	return rc;
}

int config_set(struct kp_config *cfg, const char *assignment, char *err, size_t errlen)
{
	char buf[4096];
	if (strlen(assignment) >= sizeof(buf)) {
		snprintf(err, errlen, "--set: argument longer than %zu bytes", sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, assignment);
	char *eq = strchr(buf, '=');
	if (!eq) {
		snprintf(err, errlen, "--set %s: expected key=value", assignment);
		return -EINVAL;
	}
	*eq = '\0';
	char where[128];
	snprintf(where, sizeof(where), "--set %.100s", trim(buf));
	char *val = trim(eq + 1);
	size_t vl = strlen(val);
	if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
		val[vl - 1] = '\0';
		val++;
	}
	return set_value(cfg, trim(buf), val, where, err, errlen);
}

const char *config_default_path(void)
{
	const char *env = getenv("KPROBE_CONFIG");
	if (env && *env)
		return env;
	if (access("kprobe.conf", R_OK) == 0)
		return "kprobe.conf";
	return NULL;
}

int config_from_args(struct kp_config *cfg, int *argc, char **argv, char *err, size_t errlen)
{
	const char *file = NULL;
	/* First pass: find --config, so the file applies before any --set. */
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--")) 
			break;
		if (!strcmp(argv[i], "--config")) {
			if (i + 1 >= *argc) {
				snprintf(err, errlen, "--config needs a file name");
				return -EINVAL;
			}
			file = argv[i + 1];
		} else if (!strncmp(argv[i], "--config=", 9)) {
			file = argv[i] + 9;
		}
	}
	if (!file)
		file = config_default_path();
	if (file) {
		int r = config_load_file(cfg, file, err, errlen);
		if (r < 0)
			return r;
	}
	int out = 1;
	for (int i = 1; i < *argc; i++) {
		if (!strcmp(argv[i], "--")) {
			while (i < *argc)
				argv[out++] = argv[i++];
			break;
		}
		if (!strcmp(argv[i], "--config")) {
			i++;
			continue;
		}
		if (!strncmp(argv[i], "--config=", 9))
			continue;
		const char *assign = NULL;
		if (!strcmp(argv[i], "--set")) {
			if (i + 1 >= *argc) {
				snprintf(err, errlen, "--set needs key=value");
				return -EINVAL;
			}
			assign = argv[++i];
		} else if (!strncmp(argv[i], "--set=", 6)) {
			assign = argv[i] + 6;
		}
		if (assign) {
			int r = config_set(cfg, assign, err, errlen);
			if (r < 0)
				return r;
			continue;
		}
		argv[out++] = argv[i];
	}
	argv[out] = NULL;
	*argc = out;
	return 0;
}

void config_print(const struct kp_config *cfg, FILE *out)
{
	for (int i = 0; i < NKEYS; i++) {
		const struct keydef *k = &keys[i];
		const void *slot = (const char *)cfg + k->off;
		fprintf(out, "%s = ", k->key);
		switch (k->kind) {
		case K_BOOL:
			fputs(*(const bool *)slot ? "true" : "false", out);
			break;
		case K_INT:
			fprintf(out, "%lld", (long long)*(const int64_t *)slot);
			break;
		case K_STR:
		case K_ENUM:
			fprintf(out, "\"%s\"", *(char *const *)slot);
			break;
		case K_LIST: {
			const struct kp_strlist *l = slot;
			for (int j = 0; j < l->n; j++)
				fprintf(out, "%s%s", j ? ", " : "", l->v[j]);
			break;
		}
		}
		fputc('\n', out);
	}
}

void config_help(FILE *out)
{
	static const char *kname[] = {"bool", "int", "string", "list", "enum"};
	for (int i = 0; i < NKEYS; i++) {
		const struct keydef *k = &keys[i];
		fprintf(out, "  %-32s %-6s ", k->key, kname[k->kind]);
		switch (k->kind) {
		case K_BOOL:
			fprintf(out, "default %s", k->idef ? "true" : "false");
			break;
		case K_INT:
			fprintf(out, "default %lld (%lld..%lld)", (long long)k->idef,
				(long long)k->min, (long long)k->max);
			break;
		case K_STR:
		case K_LIST:
			fprintf(out, "default \"%s\"", k->sdef);
			break;
		case K_ENUM:
			fprintf(out, "one of %s", k->choices);
			break;
		}
		fprintf(out, "\n  %-32s        %s\n", "", k->help);
	}
}
