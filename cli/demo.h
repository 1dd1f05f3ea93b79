/*
 * demo.h - the demo incident: payment-handler calls settlement-svc while batch-job causes CPU
 * contention on settlement's CPU and memory pressure inside settlement's memory cgroup.
 *
 * The three roles are the kprobe binary itself, exec'ed through symlinks named after the role
 * (so the kernel's comm is "payment-handler", "settlement-svc", "batch-job"); demo_role_main()
 * runs one. The environment (a memory cgroup, a small write-throttled "batch volume" that makes
 * batch-job's dirty pages slow to write back) is set up and torn down by demo_env_*.
 */
#ifndef KP_DEMO_H
#define KP_DEMO_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- roles ---- */

/* If argv[0]'s basename names a role, runs it and returns its exit status; else returns -1. */
int demo_role_main(int argc, char **argv);

/* Outcome of one payment, as payment-handler writes it (one line per payment):
 *   "<id> <start_ns> <end_ns> ok|timeout|error <tid> <local_port>" */
struct demo_payment {
	char id[32];
	uint64_t start_ns, end_ns;
	int ok, timed_out;
	int tid, port;
};
/* Reads a results file; returns the number read (up to max), or -errno. */
int demo_results_read(const char *path, struct demo_payment *out, int max);

/* ---- environment ---- */

struct demo_env {
	char dir[256];        /* scratch: symlinks, ledger/, results, volume image */
	char memcg[256];      /* settlement's memory cgroup ("" if unavailable) */
	int memcg_v2;
	char loopdev[64];     /* the batch volume's loop device ("" if unavailable) */
	char mnt[320];        /* where it is mounted */
	char throttle_file[320]; /* blkio file holding our rule, to remove it */
	char majmin[32];
	int cpu;              /* the contended CPU (settlement and the batch-job hogs) */
	char why_no_memory[256]; /* when the memory phase cannot run: why */
};

/* Creates the scratch dir, the memory cgroup and the throttled volume (root needed for the last
 * two; without them the memory phase is skipped and why_no_memory says why). 0 or -errno. */
int demo_env_setup(struct demo_env *e, char *err, size_t errlen);
/* Moves a process into settlement's memory cgroup. */
int demo_env_join_memcg(const struct demo_env *e, pid_t pid);
/* Lifts the batch volume's write throttle (the batch job's disk is free again): the dirty
 * pages it left drain at disk speed, so the memory pressure ends with its phase. */
void demo_env_unthrottle(const struct demo_env *e);
/* Kills nothing; undoes everything setup did (unmount, detach, rules, cgroup, files). */
void demo_env_teardown(struct demo_env *e);

/* ---- the scenario ---- */

struct demo_plan {
	int quick;            /* short form for tests (~20 s) */
	int payments;         /* number of payments */
	int interval_ms;      /* between payments */
	int timeout_ms;       /* payment-handler's timeout (750) */
	int cpu_from_ms, cpu_to_ms;   /* batch-job CPU contention phase, from the start */
	int mem_from_ms, mem_to_ms;   /* batch-job memory pressure phase */
	int otlp_port;        /* where payment-handler sends spans (0: none) */
};
void demo_plan_default(struct demo_plan *p, int quick);

/* The processes of a running scenario. */
struct demo_run {
	pid_t settlement, batch, payments;
	int settlement_port;
	char results[PATH_MAX];
	char port_file[PATH_MAX]; /* settlement's port; "<port_file>.served" counts its work */
	const struct demo_env *env;
	uint64_t t0_ns; /* CLOCK_REALTIME start of the scenario (batch-job's phases count from it) */
};

/* Starts settlement-svc, batch-job and payment-handler per plan. 0 or -errno. */
int demo_run_start(const struct demo_env *e, const struct demo_plan *p, struct demo_run *r,
		   char *err, size_t errlen);
/* Waits for payment-handler to finish (progress on stderr), then stops the others. */
int demo_run_wait(struct demo_run *r, const struct demo_plan *p);
/* Kills whatever is still running. */
void demo_run_stop(struct demo_run *r);

#endif
