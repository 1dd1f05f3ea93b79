/*
 * The demo incident's workload on its own, without the recorder: payments succeed when the
 * machine is calm and time out when batch-job contends for settlement's CPU or memory. This
 * checks the scenario is real before kprobe is asked to explain it.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "cli/demo.h"
#include "common/util.h"
#include "tests/test.h"

TEST_SLOW(demo_workload_times_out_only_under_contention, 120)
{
	if (geteuid() != 0)
		SKIP("needs root for the memory cgroup and the throttled volume");
	struct demo_env e;
	char err[256];
	CHECKF(demo_env_setup(&e, err, sizeof(err)) == 0, "%s", err);
	CHECKF(e.memcg[0] && e.mnt[0], "memory phase unavailable: %s", e.why_no_memory);
	struct demo_plan p;
	demo_plan_default(&p, 1);
	struct demo_run r;
	int rc = demo_run_start(&e, &p, &r, err, sizeof(err));
	if (rc < 0) {
		demo_env_teardown(&e);
		CHECKF(0, "%s", err);
	}
	demo_run_wait(&r, &p);
	static struct demo_payment pay[256];
	int n = demo_results_read(r.results, pay, 256);
	char memcg[PATH_MAX], mnt[PATH_MAX];
	snprintf(memcg, sizeof(memcg), "%s", e.memcg);
	snprintf(mnt, sizeof(mnt), "%s", e.mnt);
	demo_env_teardown(&e);
	CHECK_EQ_INT(n, p.payments);

	int calm_ok = 0, calm = 0, cpu_to = 0, mem_to = 0;
	uint64_t t0 = pay[0].start_ns;
	for (int i = 0; i < n; i++) {
		int ms = (int)((pay[i].start_ns - t0) / NSEC_PER_MSEC);
		/* A phase's effects outlive it a little: the settlement request in flight when it
		 * ends, dirty pages still being written back. */
		int in_cpu = ms >= p.cpu_from_ms && ms < p.cpu_to_ms + 1500;
		int in_mem = ms >= p.mem_from_ms && ms < p.mem_to_ms + 3000;
		kt_note("%s at %5d ms: %s (%llu ms)%s", pay[i].id, ms,
			pay[i].ok ? "ok" : pay[i].timed_out ? "TIMEOUT" : "error",
			(unsigned long long)((pay[i].end_ns - pay[i].start_ns) / NSEC_PER_MSEC),
			in_cpu ? " [cpu phase]" : in_mem ? " [memory phase]" : "");
		if (!in_cpu && !in_mem && ms > 300) {
			calm++;
			calm_ok += pay[i].ok;
		}
		cpu_to += in_cpu && pay[i].timed_out;
		mem_to += in_mem && pay[i].timed_out;
	}
	/* Calm periods: (almost) everything succeeds; the machine may be busy with other work. */
	CHECK_GE_INT(calm_ok * 10, calm * 9);
	CHECK_GE_INT(cpu_to, 1);
	CHECK_GE_INT(mem_to, 1);
	/* Teardown left nothing behind. */
	struct stat st;
	CHECK(stat(memcg, &st) < 0);
	CHECK(stat(mnt, &st) < 0);
}
