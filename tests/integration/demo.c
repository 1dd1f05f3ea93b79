/*
 * The demo incident, short form, under the real probe: for every timed-out payment the root
 * cause names batch-job's pid and the mechanism the scenario used at that time (preemption in
 * the CPU phase, reclaim in the memory phase); fast payments get no kernel cause above the
 * threshold. Also `kprobe demo --json`'s shape.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/stack.h"
#include "common/json.h"
#include "common/util.h"
#include "tests/test.h"

static int64_t jint(const struct json *o, const char *k)
{
	int64_t v = 0;
	json_int(json_get(o, k), &v);
	return v;
}

static const char *jstr(const struct json *o, const char *k)
{
	const struct json *v = json_get(o, k);
	return v && v->type == JSON_STR ? v->u.str.s : "";
}

TEST_BPF_SLOW(demo_incident_root_causes, 240)
{
	if (access("/sys/fs/cgroup/memory/cgroup.procs", W_OK) != 0)
		kt_note("no cgroup v1 memory controller: the memory phase may be skipped");
	char data[600], report[600];
	snprintf(data, sizeof(data), "%s/data", kt_tmpdir());
	snprintf(report, sizeof(report), "%s/report.ndjson", kt_tmpdir());
	struct stack s;
	/* As `kprobe demo` runs it (cli/demo.c): a 5 ms causal threshold for a 750 ms budget. */
	const char *sets[] = {"engine.causalThresholdNs=5000000", NULL};
	struct stack_opts so = {.data_dir = data, .sets = sets, .ephemeral_ports = 1, .quiet = 1};
	char err[512];
	CHECKF(stack_start(&s, &so, err, sizeof(err)) == 0, "%s", err);
	struct cli_demo_opts o = {.quick = 1, .api_port = s.api_port, .otlp_port = s.otlp_port,
				  .report = report};
	int rc = cli_demo_run(&o);
	stack_stop(&s, 10000);
	CHECK_EQ_INT(rc, 0);

	FILE *f = fopen(report, "r");
	CHECK(f != NULL);
	static char line[1 << 20];
	CHECK(fgets(line, sizeof(line), f) != NULL);
	struct json *hdr;
	char jerr[128];
	size_t pos;
	struct json_doc *hd = json_parse(line, strlen(line), &hdr, jerr, sizeof(jerr), &pos);
	CHECKF(hd != NULL, "%s", jerr);
	int64_t batch = jint(hdr, "batch_pid"), t0 = jint(hdr, "t0");
	const struct json *cpu = json_get(hdr, "cpu_phase_ms"), *mem = json_get(hdr, "mem_phase_ms");
	int64_t cpu_from = 0, cpu_to = 0, mem_from = 0, mem_to = 0;
	json_int(cpu->u.arr.items[0], &cpu_from);
	json_int(cpu->u.arr.items[1], &cpu_to);
	json_int(mem->u.arr.items[0], &mem_from);
	json_int(mem->u.arr.items[1], &mem_to);
	CHECK_GT_INT(batch, 0);

	int timeouts = 0, explained = 0, fast = 0, fast_clean = 0, by_mech[2] = {0, 0};
	while (fgets(line, sizeof(line), f)) {
		struct json *p;
		struct json_doc *d = json_parse(line, strlen(line), &p, jerr, sizeof(jerr), &pos);
		CHECKF(d != NULL, "report line: %s", jerr);
		const char *outcome = jstr(p, "outcome");
		int64_t start = jint(p, "start_ns"), end = jint(p, "end_ns");
		int64_t at_ms = (start - t0) / 1000000;
		const char *mech = jstr(p, "mechanism");
		int culprit = (int)jint(p, "culprit_pid");
		const struct json *kc = json_get(p, "kernel_cause");
		int has_kernel = kc && kc->type == JSON_BOOL && kc->u.b;
		if (!strcmp(outcome, "timeout")) {
			timeouts++;
			/* Which phase was the payment in (its effects outlive the phase a little)? */
			int in_cpu = at_ms >= cpu_from - 100 && at_ms < cpu_to + 1500;
			int in_mem = mem_to > 0 && at_ms >= mem_from - 100 && at_ms < mem_to + 3000;
			kt_note("%s at %lld ms (%lld ms): root cause %s by pid %d (%s phase)",
				jstr(p, "id"), (long long)at_ms, (long long)(end - start) / 1000000,
				mech, culprit, in_cpu ? "cpu" : in_mem ? "memory" : "no");
			CHECKF(has_kernel, "%s timed out without a kernel cause: %.600s", jstr(p, "id"),
			       line);
			CHECKF(culprit == batch, "%s: culprit pid %d, batch-job is %lld", jstr(p, "id"),
			       culprit, (long long)batch);
			CHECKF(in_cpu || in_mem, "%s timed out outside both phases", jstr(p, "id"));
			if (in_cpu)
				CHECKF(!strcmp(mech, "preemption"), "%s (cpu phase): mechanism %s",
				       jstr(p, "id"), mech);
			if (in_mem)
				CHECKF(!strcmp(mech, "reclaim"), "%s (memory phase): mechanism %s",
				       jstr(p, "id"), mech);
			by_mech[in_mem]++;
			explained++;
		} else if (!strcmp(outcome, "ok") && end - start < 50 * 1000000ll &&
			   !(at_ms >= cpu_from - 500 && at_ms < cpu_to + 1500) &&
			   !(mem_to > 0 && at_ms >= mem_from - 500 && at_ms < mem_to + 3000)) {
			/* fast, and in a calm period: nothing of batch-job's doing */
			fast++;
			fast_clean += !has_kernel;
			if (has_kernel)
				kt_note("fast payment %s (%lld ms) has a kernel cause: %s by %d",
					jstr(p, "id"), (long long)(end - start) / 1000000, mech,
					culprit);
		}
		json_free(d);
	}
	fclose(f);
	json_free(hd);
	kt_note("%d timeouts (%d preemption, %d reclaim), %d fast payments (%d without kernel "
		"cause)",
		timeouts, by_mech[0], by_mech[1], fast, fast_clean);
	CHECK_GE_INT(timeouts, 2);
	CHECK_EQ_INT(explained, timeouts);
	CHECK_GE_INT(by_mech[0], 1);
	if (mem_to > 0)
		CHECK_GE_INT(by_mech[1], 1);
	CHECK_GE_INT(fast, 10);
	CHECK_EQ_INT(fast_clean, fast);
}
