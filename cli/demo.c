/*
 * demo.c - `kprobe demo`: a real incident on this host, recorded by the real probe, explained
 * by the causal engine, printed in the shape of the original example:
 *
 *   [Request pay-00017 received]                       settlement-svc PID 2841   +0.2 ms
 *        |
 *   [ledger write initiated]                           settlement-svc PID 2841   +0.4 ms
 *        |
 *   [KERNEL: memory pressure (reclaim) from batch-job PID 4721]     612.3 ms   82% of it
 *        |
 *   [ledger write completed]                                        640.1 ms
 *        |
 *   [TIMEOUT: 750 ms exceeded]                         payment-handler PID 2840  750.0 ms
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo.h"
#include "cli/stack.h"
#include "common/json.h"
#include "common/util.h"
#include "httpd/client.h"

/* GET path on 127.0.0.1:port; 0 with the body, or the HTTP status / -errno. */
static int http_get(int port, const char *path, struct kp_buf *body)
{
	struct httpc_req req = {.method = "GET", .path = path, .timeout_ms = 10000};
	struct httpc_resp resp = {0};
	char err[128];
	int r = httpc_request("127.0.0.1", port, &req, &resp, err, sizeof(err));
	if (r < 0)
		return r;
	r = resp.status == 200 ? 0 : resp.status;
	body->len = 0;
	buf_append(body, resp.body.data ? resp.body.data : "", resp.body.len);
	httpc_resp_free(&resp);
	return r;
}

static const char *jstr(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : "";
}

static int64_t jint(const struct json *o, const char *k)
{
	int64_t x = 0;
	json_int(json_get(o, k), &x);
	return x;
}

static double jnum(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_NUM ? v->u.num.d : 0;
}

/* Does a root-cause answer name a kernel cause (and which)? */
struct verdict {
	int has_kernel;
	int culprit_pid;
	char mechanism[16];
	double kernel_ms, share;
};

static void judge(const struct json *root, struct verdict *v)
{
	memset(v, 0, sizeof(*v));
	const struct json *chain = json_get(root, "chain");
	if (!chain || chain->type != JSON_ARR)
		return;
	for (size_t i = 0; i < chain->u.arr.n; i++) {
		const struct json *s = chain->u.arr.items[i];
		const char *kind = jstr(s, "kind");
		if (!strcmp(kind, "offcpu") || !strcmp(kind, "reclaim") || !strcmp(kind, "faults")) {
			v->has_kernel = 1;
			snprintf(v->mechanism, sizeof(v->mechanism), "%s",
				 !strcmp(kind, "offcpu") ? "preemption" : kind);
			v->kernel_ms = jnum(s, "latency_ns") / 1e6;
			v->share = jnum(s, "share");
		} else if (!strcmp(kind, "process") && v->has_kernel) {
			v->culprit_pid = (int)jint(s, "pid");
		}
	}
}

static void line(const char *label, const char *who, const char *right)
{
	printf("  %-58s %-28s %s\n", label, who, right);
}

/* The narrative of a chain, in time order from the request to the symptom. */
static void print_chain(const char *id, const struct json *root)
{
	const struct json *sym = json_get(root, "symptom");
	const struct json *chain = json_get(root, "chain");
	uint64_t t0 = (uint64_t)jint(sym, "start_ns");
	double total = jnum(sym, "latency_ns") / 1e6;
	const struct json *srv = NULL, *sys = NULL, *culprit = NULL;
	const struct json *kernel[8];
	int nk = 0;
	for (size_t i = 0; chain && chain->type == JSON_ARR && i < chain->u.arr.n; i++) {
		const struct json *s = chain->u.arr.items[i];
		const char *kind = jstr(s, "kind");
		if (!strcmp(kind, "request") && !strcmp(jstr(s, "edge"), "waited-on"))
			srv = s;
		else if (!strcmp(kind, "syscall"))
			sys = s;
		else if ((!strcmp(kind, "offcpu") || !strcmp(kind, "reclaim") ||
			  !strcmp(kind, "faults")) && nk < 8)
			kernel[nk++] = s;
		else if (!strcmp(kind, "process"))
			culprit = s;
	}
	char who[96], right[96], label[160];
	printf("\nRoot cause of %s (%s, %.1f ms):\n\n", id, jstr(sym, "service"), total);
	if (srv) {
		snprintf(label, sizeof(label), "[Request %s received]", id);
		snprintf(who, sizeof(who), "%s PID %lld", jstr(srv, "comm"),
			 (long long)jint(srv, "pid"));
		snprintf(right, sizeof(right), "+%.1f ms",
			 (double)((uint64_t)jint(srv, "start_ns") - t0) / 1e6);
		line(label, who, right);
		printf("       |\n");
	}
	if (sys) {
		snprintf(label, sizeof(label), "[%s initiated]", jstr(sys, "text"));
		snprintf(who, sizeof(who), "%s PID %lld", jstr(sys, "comm"),
			 (long long)jint(sys, "pid"));
		snprintf(right, sizeof(right), "+%.1f ms",
			 (double)((uint64_t)jint(sys, "start_ns") - t0) / 1e6);
		line(label, who, right);
		printf("       |\n");
	}
	for (int k = 0; k < nk; k++) {
		snprintf(label, sizeof(label), "[%s]", jstr(kernel[k], "text"));
		snprintf(right, sizeof(right), "%.1f ms   %.0f%% of it",
			 jnum(kernel[k], "latency_ns") / 1e6, jnum(kernel[k], "share") * 100);
		line(label, "", right);
		printf("       |\n");
	}
	if (sys) {
		snprintf(label, sizeof(label), "[%s completed]", jstr(sys, "text"));
		snprintf(right, sizeof(right), "%.1f ms", jnum(sys, "latency_ns") / 1e6);
		line(label, "", right);
		printf("       |\n");
	}
	snprintf(label, sizeof(label), "[%s]", jstr(sym, "text"));
	snprintf(who, sizeof(who), "%s PID %lld", jstr(sym, "comm"), (long long)jint(sym, "pid"));
	snprintf(right, sizeof(right), "%.1f ms   <- symptom", total);
	line(label, who, right);
	if (culprit && nk)
		printf("\n  The %s waited %.0f ms in the kernel because %s (PID %lld) %s.\n",
		       sys ? jstr(sys, "text") : "request", jnum(kernel[0], "latency_ns") / 1e6,
		       jstr(culprit, "comm"), (long long)jint(culprit, "pid"),
		       !strcmp(jstr(kernel[0], "kind"), "reclaim")
			       ? "filled the memory cgroup they share (reclaim)"
			       : "held the CPU (preemption)");
	else if (!nk)
		printf("\n  No kernel cause above engine.causalThresholdNs was found for it.\n");
}

int cli_demo_run(const struct cli_demo_opts *o)
{
	struct demo_env env;
	char err[512];
	if (demo_env_setup(&env, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe demo: %s\n", err);
		return 1;
	}
	if (env.why_no_memory[0])
		fprintf(stderr, "kprobe demo: the memory-pressure phase is skipped: %s\n",
			env.why_no_memory);
	struct demo_plan plan;
	demo_plan_default(&plan, o->quick);
	plan.otlp_port = o->otlp_port;
	fprintf(stderr,
		"kprobe demo: payment-handler calls settlement-svc (750 ms timeout); batch-job "
		"contends for its CPU at +%.1f s and for its memory at +%.1f s\n",
		plan.cpu_from_ms / 1e3, plan.mem_from_ms / 1e3);
	struct demo_run run;
	if (demo_run_start(&env, &plan, &run, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe demo: %s\n", err);
		demo_env_teardown(&env);
		return 1;
	}
	pid_t batch_pid = run.batch;
	demo_run_wait(&run, &plan);
	static struct demo_payment pay[512];
	int n = demo_results_read(run.results, pay, 512);
	int rc = 1;
	if (n <= 0) {
		fprintf(stderr, "kprobe demo: payment-handler reported nothing\n");
		goto out;
	}
	int failed = 0, first = -1;
	for (int i = 0; i < n; i++)
		if (pay[i].timed_out && failed++ == 0)
			first = i;
	fprintf(stderr, "kprobe demo: %d payments, %d timed out\n", n, failed);
	if (first < 0) {
		fprintf(stderr, "kprobe demo: no payment timed out this time (the machine absorbed "
				"the contention); run it again\n");
		goto out;
	}

	FILE *rep = o->report ? fopen(o->report, "w") : NULL;
	if (rep) {
		fprintf(rep,
			"{\"batch_pid\":%d,\"t0\":%llu,\"cpu_phase_ms\":[%d,%d],\"mem_phase_ms\":[%d,%d],"
			"\"timeout_ms\":%d,\"memory_phase\":%s}\n",
			batch_pid, (unsigned long long)pay[0].start_ns, plan.cpu_from_ms, plan.cpu_to_ms,
			env.mnt[0] ? plan.mem_from_ms : 0, env.mnt[0] ? plan.mem_to_ms : 0,
			plan.timeout_ms, env.mnt[0] ? "true" : "false");
	}
	/* Wait for the engine: each payment's root cause appears engine.lateMs after it ends. */
	struct kp_buf body = {0};
	int shown = 0;
	for (int i = 0; i < n; i++) {
		if (!rep && i != first)
			continue;
		char path[96];
		snprintf(path, sizeof(path), "/api/v1/rootcause/%s", pay[i].id);
		/* A timed-out payment's chain completes when the server finally answers the
		 * request (it may have been starved for seconds): wait for a kernel cause, up to a
		 * bound, then take what is there. */
		int r = -1;
		uint64_t give_up = now_mono_ns() + 20 * NSEC_PER_SEC;
		while ((!o->stop || !*o->stop)) {
			r = http_get(o->api_port, path, &body);
			if (r == 0 && !pay[i].timed_out)
				break;
			if (r == 0) {
				struct json *jr;
				char je[64];
				size_t jp;
				struct json_doc *jd =
					json_parse(body.data, body.len, &jr, je, sizeof(je), &jp);
				struct verdict v0 = {0};
				if (jd)
					judge(jr, &v0);
				json_free(jd);
				if (v0.has_kernel && v0.share >= 0.5)
					break; /* the chain explains most of the timeout */
			}
			if (now_mono_ns() > give_up)
				break;
			usleep(200000);
		}
		struct json *root = NULL;
		char jerr[64];
		size_t pos;
		struct json_doc *d = r == 0 ? json_parse(body.data, body.len, &root, jerr,
							 sizeof(jerr), &pos)
					    : NULL;
		struct verdict v;
		if (d)
			judge(root, &v);
		else
			memset(&v, 0, sizeof(v));
		if (rep)
			fprintf(rep,
				"{\"id\":\"%s\",\"start_ns\":%llu,\"end_ns\":%llu,\"outcome\":\"%s\","
				"\"found\":%s,\"kernel_cause\":%s,\"mechanism\":\"%s\",\"culprit_pid\":%d,"
				"\"kernel_ms\":%.3f,\"rootcause\":%s}\n",
				pay[i].id, (unsigned long long)pay[i].start_ns,
				(unsigned long long)pay[i].end_ns,
				pay[i].ok ? "ok" : pay[i].timed_out ? "timeout" : "error",
				d ? "true" : "false", v.has_kernel ? "true" : "false", v.mechanism,
				v.culprit_pid, v.kernel_ms, d ? body.data : "null");
		if (i == first) {
			if (!d) {
				fprintf(stderr, "kprobe demo: no root cause for %s from kprobed (HTTP "
						"%d); is the agent recording?\n",
					pay[i].id, r);
			} else if (o->json) {
				fwrite(body.data, 1, body.len, stdout);
				putchar('\n');
				shown = 1;
			} else {
				print_chain(pay[i].id, root);
				shown = 1;
			}
			fflush(stdout);
		}
		json_free(d);
	}
	buf_free(&body);
	if (rep)
		fclose(rep);
	rc = shown ? 0 : 1;
out:
	demo_env_teardown(&env);
	return rc;
}

static volatile sig_atomic_t demo_stop;
static void on_sig(int sig)
{
	demo_stop = 1;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kprobe demo [--quick] [--json] [--api HOST:PORT] [--keep DIR]\n"
		"\n"
		"Runs a real incident on this host and prints the root cause of the first failed\n"
		"payment: payment-handler (750 ms timeout, OpenTelemetry spans) calls settlement-svc\n"
		"(ledger write + fsync per request) while batch-job contends for settlement's CPU\n"
		"and then for its memory cgroup. Needs root (BPF, cgroups, a loop device).\n"
		"\n"
		"  --quick           the short form (~25 s; default ~45 s)\n"
		"  --json            print the chain as JSON: {\"key\", \"symptom\", \"chain\": [...]}\n"
		"  --api PORT        use a running kprobed (with its agent) on 127.0.0.1:PORT; by\n"
		"                    default the demo starts its own appliance and agent\n"
		"  --otlp PORT       that kprobed's OTLP port (with --api; default 4318)\n"
		"  --report FILE     also write every payment's outcome and root cause (NDJSON)\n"
		"  --keep DIR        keep the appliance's data in DIR (default: a temporary dir)\n");
}

int cli_demo(int argc, char **argv)
{
	struct cli_demo_opts o = {.stop = &demo_stop, .otlp_port = 4318};
	const char *keep = NULL;
	static const struct option opts[] = {{"quick", no_argument, 0, 'q'},
					     {"json", no_argument, 0, 'j'},
					     {"api", required_argument, 0, 'a'},
					     {"otlp", required_argument, 0, 'o'},
					     {"report", required_argument, 0, 'r'},
					     {"keep", required_argument, 0, 'k'},
					     {"help", no_argument, 0, 'h'},
					     {0, 0, 0, 0}};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'q':
			o.quick = 1;
			break;
		case 'j':
			o.json = 1;
			break;
		case 'a':
			o.api_port = atoi(optarg);
			break;
		case 'o':
			o.otlp_port = atoi(optarg);
			break;
		case 'r':
			o.report = optarg;
			break;
		case 'k':
			keep = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "kprobe demo: needs root (it loads BPF programs, creates a memory "
				"cgroup and a loop device); run it with sudo\n");
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_sig};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (o.api_port)
		return cli_demo_run(&o);

	char tmp[64] = "/tmp/kprobe-demo-data.XXXXXX";
	const char *dir = keep;
	if (!dir) {
		if (!mkdtemp(tmp)) {
			perror("kprobe demo: mkdtemp");
			return 1;
		}
		dir = tmp;
	}
	fprintf(stderr, "kprobe demo: starting kprobed and kprobe-agent (data in %s)...\n", dir);
	/* The demo's transactions live on a 750 ms budget: causes under 5 ms (< 1% of it) are
	 * noise here (a kernel thread's turn on settlement's CPU), not what an engineer is after. */
	const char *sets[] = {"engine.rules.files=*/ledger/*=ledger write",
			      "engine.causalThresholdNs=5000000", NULL};
	struct stack s;
	struct stack_opts so = {.data_dir = dir, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	if (stack_start(&s, &so, err, sizeof(err)) < 0) {
		fprintf(stderr, "kprobe demo: %s\n", err);
		return 1;
	}
	o.api_port = s.api_port;
	o.otlp_port = s.otlp_port;
	int rc = cli_demo_run(&o);
	stack_stop(&s, 10000);
	if (!keep) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd) != 0)
			fprintf(stderr, "kprobe demo: could not remove %s\n", tmp);
	} else {
		fprintf(stderr, "kprobe demo: data kept in %s (kprobe up --data %s to explore it)\n",
			keep, keep);
	}
	return rc;
}
