/* Tests common/config.c: defaults, file loading, --set, and errors that name key, file, line. */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/config.h"
#include "tests/test.h"

static const char *write_file(const char *name, const char *text)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/%s", kt_tmpdir(), name);
	FILE *f = fopen(path, "w");
	CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	return path;
}

TEST(config_defaults)
{
	struct kp_config c;
	config_init(&c);
	CHECK_EQ_INT(c.api_port, 8080);
	CHECK_EQ_INT(c.ingest_port, 7077);
	CHECK_EQ_INT(c.otlp_port, 4318);
	CHECK_EQ_INT(c.engine_window_ms, 100);
	CHECK_EQ_INT(c.engine_threshold_ns, 50000);
	CHECK_EQ_INT(c.probe_ringbuf_kb, 4096);
	CHECK(c.probe_hooks_tcp);
	CHECK(!c.api_auth_enabled);
	CHECK_EQ_STR(c.agent_appliance, "127.0.0.1:7077");
	CHECK_EQ_STR(c.probe_syscall_attach, "auto");
	CHECK_EQ_INT(c.probe_exclude_comms.n, 2);
	config_free(&c);
}

TEST(config_file_and_set)
{
	const char *p = write_file("a.conf", "# a comment\n"
					     "\n"
					     "probe.ebpf.hooks.tcp = false   # trailing comment\n"
					     "probe.ebpf.ringBufferSizeKb=8192\n"
					     "probe.filter.comms = nginx, postgres ,  redis\n"
					     "api.bind = \"0.0.0.0\"\n"
					     "agent.nodeName = \"node # 1\"\n");
	struct kp_config c;
	char err[256];
	config_init(&c);
	CHECK_EQ_INT(config_load_file(&c, p, err, sizeof(err)), 0);
	CHECK(!c.probe_hooks_tcp);
	CHECK_EQ_INT(c.probe_ringbuf_kb, 8192);
	CHECK_EQ_INT(c.probe_filter_comms.n, 3);
	CHECK_EQ_STR(c.probe_filter_comms.v[1], "postgres");
	CHECK_EQ_STR(c.api_bind, "0.0.0.0");
	CHECK_EQ_STR(c.agent_node_name, "node # 1");
	CHECK_EQ_INT(config_set(&c, "engine.windowMs=50", err, sizeof(err)), 0);
	CHECK_EQ_INT(c.engine_window_ms, 50);
	CHECK_EQ_INT(config_set(&c, "probe.ebpf.syscallAttach=tracepoint", err, sizeof(err)), 0);
	CHECK_EQ_STR(c.probe_syscall_attach, "tracepoint");
	config_free(&c);
}

TEST(config_errors_name_key_file_line)
{
	struct kp_config c;
	char err[256];
	config_init(&c);
	const char *p = write_file("b.conf", "api.port = 9000\nprobe.ebpf.hook.tcp = true\n");
	CHECK_EQ_INT(config_load_file(&c, p, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "b.conf:2");
	CHECK_CONTAINS(err, "unknown key 'probe.ebpf.hook.tcp'");

	p = write_file("c.conf", "\n\n\nprobe.ebpf.ringBufferSizeKb = lots\n");
	CHECK_EQ_INT(config_load_file(&c, p, err, sizeof(err)), -EINVAL);
	CHECK_CONTAINS(err, "c.conf:4");
	CHECK_CONTAINS(err, "probe.ebpf.ringBufferSizeKb");
	CHECK_CONTAINS(err, "'lots' is not an integer");

	p = write_file("d.conf", "api.port = 70000\n");
	CHECK_EQ_INT(config_load_file(&c, p, err, sizeof(err)), -ERANGE);
	CHECK_CONTAINS(err, "d.conf:1: api.port: 70000 is out of range (0..65535)");

	p = write_file("e.conf", "api.auth.enabled = maybe\n");
	CHECK(config_load_file(&c, p, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "api.auth.enabled");

	p = write_file("f.conf", "just some words\n");
	CHECK(config_load_file(&c, p, err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "f.conf:1: expected 'key = value'");

	CHECK(config_set(&c, "nope.key=1", err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "--set nope.key: unknown key");
	CHECK(config_set(&c, "probe.ebpf.syscallAttach=kprobe", err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "not one of auto|raw|tracepoint");
	CHECK(config_load_file(&c, "/nonexistent/kprobe.conf", err, sizeof(err)) < 0);
	CHECK_CONTAINS(err, "/nonexistent/kprobe.conf: cannot open");
	/* A failed load leaves earlier values alone. */
	CHECK_EQ_INT(c.api_port, 9000);
	config_free(&c);
}

TEST(config_from_args_order)
{
	const char *p = write_file("g.conf", "api.port = 9100\nengine.windowMs = 20\n");
	char *argv[] = {"prog", "--set", "api.port=9200", "--stdout", "--config", (char *)p,
			"--set=engine.windowMs=30", "--", "--set", "x", NULL};
	int argc = 10;
	struct kp_config c;
	char err[256];
	config_init(&c);
	CHECK_EQ_INT(config_from_args(&c, &argc, argv, err, sizeof(err)), 0);
	/* The file applies first, then every --set in order. */
	CHECK_EQ_INT(c.api_port, 9200);
	CHECK_EQ_INT(c.engine_window_ms, 30);
	CHECK_EQ_INT(argc, 5);
	CHECK_EQ_STR(argv[1], "--stdout");
	CHECK_EQ_STR(argv[2], "--");
	CHECK_EQ_STR(argv[3], "--set");
	config_free(&c);
}

/* kprobe.conf, the shipped default, must parse and document every key exactly once. */
TEST(config_shipped_file_documents_every_key)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/kprobe.conf", KP_SRCDIR);
	struct kp_config c;
	char err[256];
	config_init(&c);
	CHECKF(config_load_file(&c, path, err, sizeof(err)) == 0, "%s", err);
	FILE *f = fopen(path, "r");
	CHECK(f != NULL);
	static char text[1 << 16];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	for (int i = 0; i < config_key_count(); i++) {
		char pat[256];
		/* Every key appears as a setting line (possibly commented out: "# key = "). */
		snprintf(pat, sizeof(pat), "\n%s =", config_key_name(i));
		char pat2[260];
		snprintf(pat2, sizeof(pat2), "\n# %s =", config_key_name(i));
		CHECKF(strstr(text, pat) || strstr(text, pat2), "kprobe.conf does not document %s",
		       config_key_name(i));
	}
	config_free(&c);
}
