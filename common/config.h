/*
 * config.h - the configuration shared by every kprobe binary.
 *
 * One registry (KP_CONFIG_KEYS below) names every key, its type, default, bounds and one line of
 * help. It generates struct kp_config, the defaults, the parser's checks and `--help-config`.
 * The file format is line based, the key names are those of the original configuration reference
 * (probe.ebpf.hooks.tcp, engine.windowMs, ...):
 *
 *     # comment
 *     probe.ebpf.ringBufferSizeKb = 4096
 *     probe.filter.comms = nginx, postgres      # lists are comma separated
 *     api.bind = "127.0.0.1"                     # quotes are optional
 *
 * Every binary accepts `--config FILE` and any number of `--set key=value`, applied in that order
 * after the defaults. An unknown key or a bad value is an error that names the key, the file and
 * the line (or the --set argument).
 */
#ifndef KP_CONFIG_H
#define KP_CONFIG_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

struct kp_strlist {
	int n;
	char **v; /* owned by the config */
};

/*
 * X(kind, field, "key", default, min, max, "help")
 *   kind: BOOL, INT (int64 within [min, max]), STR, LIST, or ENUM (default/min unused;
 *   max is a "a|b|c" string of allowed values).
 */
#define KP_CONFIG_KEYS(X)                                                                          \
	X(BOOL, probe_hooks_tcp, "probe.ebpf.hooks.tcp", 1, 0, 0,                                  \
	  "TCP send/receive, connection state changes and retransmits")                           \
	X(BOOL, probe_hooks_syscall, "probe.ebpf.hooks.syscall", 1, 0, 0,                          \
	  "read, write and fsync families with durations")                                         \
	X(BOOL, probe_hooks_sched, "probe.ebpf.hooks.sched", 1, 0, 0,                              \
	  "off-CPU episodes: preemption, blocking, wake-ups, run-queue delay")                     \
	X(BOOL, probe_hooks_fault, "probe.ebpf.hooks.fault", 1, 0, 0,                              \
	  "per-thread page-fault bursts")                                                          \
	X(BOOL, probe_hooks_memory, "probe.ebpf.hooks.memory", 1, 0, 0,                            \
	  "direct and memory-cgroup reclaim stalls")                                               \
	X(BOOL, probe_hooks_process, "probe.ebpf.hooks.process", 1, 0, 0,                          \
	  "process exec, fork and exit")                                                           \
	X(INT, probe_ringbuf_kb, "probe.ebpf.ringBufferSizeKb", 4096, 64, 1048576,                 \
	  "kernel ring buffer size in KiB (rounded up to a power of two)")                         \
	X(INT, probe_wakeup_kb, "probe.ebpf.wakeupKb", 256, 0, 1048576,                          \
	  "wake the agent when this many KiB wait in the ring buffer (it also drains every "      \
	  "10 ms); 0 = wake it for every record")                                                   \
	X(ENUM, probe_syscall_attach, "probe.ebpf.syscallAttach", 0, 0, "auto|raw|tracepoint",     \
	  "how syscalls are hooked: raw sys_enter/sys_exit filtered on the syscall id, or the "    \
	  "per-syscall tracepoints; auto picks raw (the cheaper here, see bench/RESULTS.md)")      \
	X(LIST, probe_filter_pids, "probe.filter.pids", "", 0, 0,                                  \
	  "record only these processes (tgids); empty = all")                                      \
	X(LIST, probe_filter_comms, "probe.filter.comms", "", 0, 0,                                \
	  "record only processes with these command names (at most 8); empty = all")              \
	X(LIST, probe_filter_cgroups, "probe.filter.cgroups", "", 0, 0,                            \
	  "record only tasks in these cgroup directories (v2, or v1 memory/cpu); empty = all")    \
	X(LIST, probe_exclude_comms, "probe.filter.excludeComms", "kprobed,kprobe-agent", 0, 0,   \
	  "never record processes with these command names (the recorder's own I/O)")             \
	X(INT, probe_min_read_ns, "probe.minDurationNs.read", 0, 0, INT64_MAX,                     \
	  "drop reads shorter than this")                                                          \
	X(INT, probe_min_write_ns, "probe.minDurationNs.write", 0, 0, INT64_MAX,                   \
	  "drop writes shorter than this")                                                         \
	X(INT, probe_min_fsync_ns, "probe.minDurationNs.fsync", 0, 0, INT64_MAX,                   \
	  "drop fsyncs shorter than this")                                                         \
	X(INT, probe_min_offcpu_ns, "probe.minDurationNs.offcpu", 50000, 0, INT64_MAX,             \
	  "drop off-CPU episodes shorter than this")                                               \
	X(INT, probe_min_reclaim_ns, "probe.minDurationNs.reclaim", 0, 0, INT64_MAX,               \
	  "drop reclaim stalls shorter than this")                                                 \
	X(INT, probe_faults_window_ms, "probe.faults.windowMs", 10, 1, 10000,                     \
	  "page faults of one thread are summed over this window into one faults event")          \
	X(INT, probe_faults_min_count, "probe.faults.minCount", 1, 1, 1000000,                     \
	  "drop fault bursts with fewer faults than this")                                         \
	X(STR, agent_appliance, "agent.appliance", "127.0.0.1:7077", 0, 0,                         \
	  "where the agent ships its frames (host:port of kprobed's ingest)")                      \
	X(STR, agent_node_name, "agent.nodeName", "", 0, 0,                                        \
	  "this node's name in the appliance; empty = the host name")                              \
	X(STR, agent_spool_dir, "agent.spoolDir", "/var/lib/kprobe/spool", 0, 0,                   \
	  "where unacked frames wait on disk while the appliance is away")                         \
	X(INT, agent_spool_max_mb, "agent.spoolMaxMb", 256, 1, 1048576,                            \
	  "spool size bound; when full the oldest frames are dropped, counted and logged")        \
	X(INT, agent_memory_queue_mb, "agent.memoryQueueMb", 16, 1, 4096,                          \
	  "unacked frames kept in memory before they go to the spool")                             \
	X(INT, agent_batch_events, "agent.batchEvents", 4096, 1, 65536,                            \
	  "a frame is cut at this many events")                                                    \
	X(INT, agent_batch_ms, "agent.batchMs", 50, 1, 60000,                                      \
	  "... or when its oldest event is this old")                                              \
	X(INT, agent_stats_sec, "agent.statsSec", 10, 0, 86400,                                    \
	  "log a line of counters this often (0 = never)")                                         \
	X(INT, agent_reconnect_max_ms, "agent.reconnectMaxMs", 5000, 10, 600000,                   \
	  "reconnect backoff doubles from 50 ms up to this")                                       \
	X(INT, agent_cmdline_bytes, "agent.cmdlineBytes", 256, 0, 4096,                            \
	  "how much of a process's command line travels as metadata")                              \
	X(STR, ingest_bind, "ingest.bind", "127.0.0.1", 0, 0,                                      \
	  "address kprobed accepts agent frames on")                                               \
	X(INT, ingest_port, "ingest.port", 7077, 0, 65535,                                         \
	  "agent frames (TCP); 0 = any free port (kprobed writes the ports it got)")              \
	X(INT, ingest_max_conns, "ingest.maxConnections", 1024, 1, 65536,                          \
	  "agents connected at once; more are refused")                                            \
	X(INT, ingest_commit_us, "ingest.groupCommitUs", 2000, 0, 1000000,                         \
	  "WAL group commit: wait at most this long to gather frames into one fsync")             \
	X(INT, ingest_frame_timeout_ms, "ingest.frameTimeoutMs", 30000, 100, 3600000,             \
	  "a frame must arrive whole within this once started; slower peers are disconnected")    \
	X(STR, store_data_dir, "store.dataDir", "/var/lib/kprobe", 0, 0,                           \
	  "WAL, segments and graph")                                                               \
	X(INT, store_retention_days, "store.retentionDays", 30, 1, 36500,                          \
	  "whole day partitions older than this are deleted")                                      \
	X(BOOL, store_partition_by_day, "store.partitionByDay", 1, 0, 0,                           \
	  "one directory of segments per UTC day (retention deletes whole days)")                 \
	X(INT, engine_window_ms, "engine.windowMs", 100, 1, 60000,                                 \
	  "the causal engine groups events into windows of this length")                           \
	X(INT, engine_threshold_ns, "engine.causalThresholdNs", 50000, 0, INT64_MAX,               \
	  "edges explaining less latency than this are not drawn")                                 \
	X(STR, api_bind, "api.bind", "127.0.0.1", 0, 0, "HTTP API and dashboard address")         \
	X(INT, api_port, "api.port", 8080, 0, 65535, "HTTP API, dashboard, stream, /metrics; 0 = ephemeral") \
	X(BOOL, api_auth_enabled, "api.auth.enabled", 0, 0, 0,                                     \
	  "require a bearer token from api.auth.tokens on every request")                          \
	X(LIST, api_auth_tokens, "api.auth.tokens", "", 0, 0, "accepted bearer tokens")            \
	X(STR, api_dashboard_dir, "api.dashboardDir", "", 0, 0,                                    \
	  "the dashboard's built files; empty = dashboard/dist next to the binaries")              \
	X(INT, otlp_port, "otlp.port", 4318, 0, 65535, "OTLP/HTTP spans (/v1/traces); 0 = ephemeral")          \
	X(STR, otlp_bind, "otlp.bind", "127.0.0.1", 0, 0, "OTLP/HTTP address")                     \
	X(INT, otlp_max_body_mb, "otlp.maxBodyMb", 16, 1, 1024,                                    \
	  "larger OTLP bodies (after gunzip) are answered 413")                                   \
	X(LIST, otlp_txn_attributes, "otlp.transactionAttributes",                                 \
	  "transaction.id,txn.id,request.id,payment.id,http.request_id", 0, 0,                     \
	  "span attribute keys whose value is the transaction / request id, first match wins")   \
	X(INT, otlp_join_slack_us, "otlp.joinSlackUs", 1000, 0, 1000000,                           \
	  "an event that starts inside a span may end this long after it and still belong to it " \
	  "(span clocks vs the kernel's; the JS SDK's spans run up to 1 ms early)")                \
	X(INT, otlp_span_retention_sec, "otlp.spanRetentionSec", 900, 1, 604800,                   \
	  "spans stay joinable to late-arriving events this long after they end")                  \
	X(INT, otlp_span_index_max, "otlp.spanIndexMax", 262144, 1024, 67108864,                   \
	  "spans kept in memory for the join (about 250 bytes each); the oldest-ending go first")  \
	X(LIST, engine_file_rules, "engine.rules.files", "*/ledger/*=ledger write", 0, 0,                                 \
	  "name file I/O the way people talk: 'GLOB=name', e.g. /var/lib/ledger/*=ledger write")  \
	X(LIST, engine_port_rules, "engine.rules.ports", "5432=database query,3306=database "      \
	  "query,6379=cache call,9092=queue publish", 0, 0,                                        \
	  "name connections by remote port: 'PORT=name'")                                         \
	X(INT, engine_max_steps, "engine.rootCauseMaxSteps", 8, 1, 64,                             \
	  "the root-cause walk stops after this many edges")                                       \
	X(INT, engine_late_ms, "engine.lateMs", 200, 0, 600000,                                    \
	  "an item is analyzed once every agent delivered events this far past its end (or 10 s "   \
	  "passed)")                                                                               \
	X(INT, engine_slow_request_ms, "engine.slowRequestMs", 500, 1, 3600000,                    \
	  "client requests slower than this (no OTel span) become symptoms")                       \
	X(INT, engine_horizon_sec, "engine.horizonSec", 120, 5, 86400,                             \
	  "kernel episodes and requests are kept in memory this long for analysis")                \
	X(INT, engine_max_episodes, "engine.maxEpisodes", 2000000, 10000, 1000000000,              \
	  "bound on kernel episodes held in memory (oldest go first)")                             \
	X(LIST, agent_service_rules, "agent.serviceRules", "", 0, 0,                               \
	  "service name by rule: 'comm:GLOB=name' or 'cgroup:GLOB=name'; default: pod, else comm") \
	X(INT, agent_meta_resend_sec, "agent.metaResendSec", 60, 1, 86400,                         \
	  "process metadata is sent again after this long (so a dropped frame loses nothing)")   \
	X(INT, store_memtable_rows, "store.memtableRows", 1048576, 8192, 67108864,                 \
	  "the memtable is sealed into a segment at this many rows ...")                           \
	X(INT, store_seal_sec, "store.sealSec", 60, 1, 86400, "... or when its oldest row is this old") \
	X(INT, store_graph_max_mb, "store.graphMaxMb", 65536, 16, 16777216,                      \
	  "upper bound of the causal graph's LMDB map (sparse); writes past it fail, are logged")  \
	X(INT, api_max_rows, "api.maxRows", 100000, 1, 100000000,                                  \
	  "a query answers at most this many rows (LIMIT above it is an error)")                  \
	X(INT, api_query_timeout_ms, "api.queryTimeoutMs", 30000, 1, 3600000,                      \
	  "queries running longer are cancelled")                                                  \
	X(LIST, replay_capture_comms, "replay.capture.comms", "", 0, 0,                            \
	  "record the system-call stream (with read payloads) of processes with these names; "    \
	  "off when all replay.capture lists are empty")                                           \
	X(LIST, replay_capture_pids, "replay.capture.pids", "", 0, 0,                              \
	  "... of these processes")                                                                \
	X(LIST, replay_capture_cgroups, "replay.capture.cgroups", "", 0, 0,                        \
	  "... of tasks in these cgroup directories")                                              \
	X(INT, replay_capture_max_bytes, "replay.capture.maxBytes", 4096, 0, 65536,                \
	  "payload bytes kept per input call; longer payloads are flagged truncated")             \
	X(INT, replay_capture_store_max_mb, "replay.capture.storeMaxMb", 2048, 16, 1048576,        \
	  "kprobed: disk kept for capture records (store.dataDir/syscalls); oldest go first")     \
	X(ENUM, replay_api_enabled, "replay.api.enabled", 0, 0, "auto|true|false",                 \
	  "kprobed: POST /api/v1/replay runs programs on this host; auto = only when api.bind is " \
	  "a loopback address")                                                                    \
	X(INT, replay_api_max_concurrent, "replay.api.maxConcurrent", 1, 1, 8,                     \
	  "kprobed: replays run at once through the API; more are answered 429")                  \
	X(INT, replay_api_timeout_ms, "replay.api.timeoutMs", 20000, 1000, 3600000,                \
	  "kprobed: a replay run through the API is killed after this (at most api.queryTimeoutMs " \
	  "less 2 s)")                                                                             \
	X(INT, replay_api_max_recording_mb, "replay.api.maxRecordingMb", 128, 1, 4096,             \
	  "kprobed: recordings built or uploaded through the API are at most this large")

#define KP_CFG_FIELD_BOOL(f) bool f;
#define KP_CFG_FIELD_INT(f)  int64_t f;
#define KP_CFG_FIELD_STR(f)  char *f;
#define KP_CFG_FIELD_LIST(f) struct kp_strlist f;
#define KP_CFG_FIELD_ENUM(f) char *f;
#define KP_CFG_FIELD(kind, field, key, def, min, max, help) KP_CFG_FIELD_##kind(field)

struct kp_config {
	KP_CONFIG_KEYS(KP_CFG_FIELD)
	char *path; /* the file loaded, or NULL */
};

/* Fills *cfg with the defaults. Never fails (aborts on out-of-memory). */
void config_init(struct kp_config *cfg);

/*
 * Loads FILE over the current values. Returns 0, or -errno with a message in err (size errlen)
 * such as "kprobe.conf:12: unknown key 'probe.ebpf.hook.tcp'".
 */
int config_load_file(struct kp_config *cfg, const char *path, char *err, size_t errlen);

/* Applies one "key=value" (a --set argument). Errors as config_load_file, naming --set. */
int config_set(struct kp_config *cfg, const char *assignment, char *err, size_t errlen);

/*
 * The common command line handling: scans argv for --config FILE / --config=FILE and
 * --set k=v / --set=k=v, applies them in order (the file first), and removes them from argv
 * (argc is updated). Returns 0 or -EINVAL with the message in err.
 */
int config_from_args(struct kp_config *cfg, int *argc, char **argv, char *err, size_t errlen);

/* Frees what the config owns. */
void config_free(struct kp_config *cfg);

/* Prints every key with its value (`--print-config`), one "key = value" per line. */
void config_print(const struct kp_config *cfg, FILE *out);

/* Prints every key with its default and help (`--help-config`). */
void config_help(FILE *out);

/* Number of keys, and the name of key i (for tests that check kprobe.conf documents all). */
int config_key_count(void);
const char *config_key_name(int i);

/* The default config file: $KPROBE_CONFIG, else ./kprobe.conf if present, else NULL. */
const char *config_default_path(void);

#endif
