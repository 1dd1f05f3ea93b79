#!/usr/bin/env bash
# run.sh - bench/graph (issue 4): the causal graph store (LMDB, graph/gstore.c) against SQLite and
# Kuzu on the same synthetic causal graph (bench/graph/gen.h: 1M nodes, ~3M edges, time-ordered,
# local, hub processes fanning out to hundreds of nodes). Measures the root-cause walk and the
# 6-hop ancestor set (p50/p99 over 1000 symptoms) and edge ingest, checks that every system gives
# the same answers, prints the ratios and writes bench/graph/RESULT.md.
#
#   bench/graph/run.sh                     full size
#   GRAPH_BENCH_NODES=100000 bench/graph/run.sh   a quick run
#
# Environment: GRAPH_BENCH_NODES (1000000), GRAPH_BENCH_SYMPTOMS (1000), GRAPH_BENCH_BATCH (10000
# edges per commit), GRAPH_BENCH_PASSES (3: each query timed in 3 separate passes, the fastest
# kept, for every system alike), GRAPH_BENCH_DIR (bench/out/graph, scratch, ~1.5 GB), GRAPH_BENCH_KEEP=1 keeps
# the databases afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODES=${GRAPH_BENCH_NODES:-1000000}
SYMS=${GRAPH_BENCH_SYMPTOMS:-1000}
BATCH=${GRAPH_BENCH_BATCH:-10000}
PASSES=${GRAPH_BENCH_PASSES:-3}
OUT=${GRAPH_BENCH_DIR:-bench/out/graph}
case "${1:-}" in -h | --help)
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac

echo "graph: building graphbench (links -llmdb -lsqlite3; kprobed itself does not link SQLite)"
make -s --no-print-directory .output/libkp_graph.a .output/libkp_common.a
mkdir -p .output/bench "$OUT"
gcc -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -I. -pthread \
	bench/graph/graphbench.c .output/libkp_graph.a .output/libkp_common.a \
	-llmdb -lsqlite3 -lm -o .output/bench/graphbench

RES="$OUT/results.txt"
echo "graph: $NODES nodes, $SYMS symptoms, commit every $BATCH edges; scratch in $OUT"
.output/bench/graphbench --dir "$OUT" --nodes "$NODES" --symptoms "$SYMS" --batch "$BATCH" \
	--passes "$PASSES" --csv >"$RES"

KUZU_NOTE=""
if command -v node >/dev/null && command -v npm >/dev/null; then
	if [ ! -d bench/graph/node_modules/kuzu ]; then
		echo "graph: npm ci (kuzu, pinned in bench/graph/package-lock.json)"
		(cd bench/graph && npm ci --no-audit --no-fund --loglevel=error) ||
			KUZU_NOTE="npm ci failed (is the npm registry reachable?)"
	fi
	if [ -z "$KUZU_NOTE" ]; then
		echo "graph: Kuzu"
		node bench/graph/kuzu.mjs "$OUT" "$SYMS" "$PASSES" >>"$RES" ||
			KUZU_NOTE="kuzu.mjs failed or its answers differed (see above)"
	fi
else
	KUZU_NOTE="node/npm not installed"
fi
[ -n "$KUZU_NOTE" ] && echo "graph: Kuzu not measured: $KUZU_NOTE"

if [ "${GRAPH_BENCH_KEEP:-0}" != 1 ]; then
	rm -rf "$OUT/lmdb" "$OUT/kuzu" "$OUT"/*.db "$OUT"/*.db-* "$OUT"/*.csv
fi

declare -A R
while read -r k v; do R[$k]=$v; done <"$RES"
get() { echo "${R[$1]:-NaN}"; }
# min over the arguments' values (ignores missing)
best() {
	local m=""
	for k in "$@"; do
		[ -n "${R[$k]:-}" ] || continue
		if [ -z "$m" ] || awk -v a="${R[$k]}" -v b="$m" 'BEGIN{exit !(a<b)}'; then m=${R[$k]}; fi
	done
	echo "${m:-NaN}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b+0 > 0 && a != "NaN") printf "%.1f", a/b; else printf "n/a" }'; }
maxv() { awk -v a="$1" -v b="$2" 'BEGIN{ print (a+0 > b+0) ? a : b }'; }

SQ_RC50=$(best sqlite_index_rootcause_loop_p50_us sqlite_index_rootcause_cte_p50_us \
	sqlite_clustered_rootcause_loop_p50_us sqlite_clustered_rootcause_cte_p50_us)
SQ_RC99=$(best sqlite_index_rootcause_loop_p99_us sqlite_index_rootcause_cte_p99_us \
	sqlite_clustered_rootcause_loop_p99_us sqlite_clustered_rootcause_cte_p99_us)
SQ_AN50=$(best sqlite_index_ancestors_loop_p50_us sqlite_index_ancestors_cte_p50_us \
	sqlite_clustered_ancestors_loop_p50_us sqlite_clustered_ancestors_cte_p50_us)
SQ_AN99=$(best sqlite_index_ancestors_loop_p99_us sqlite_index_ancestors_cte_p99_us \
	sqlite_clustered_ancestors_loop_p99_us sqlite_clustered_ancestors_cte_p99_us)
SQ_ING=$(maxv "$(get sqlite_index_edges_per_s)" "$(get sqlite_clustered_edges_per_s)")
L_RC50=$(get lmdb_rootcause_p50_us) L_RC99=$(get lmdb_rootcause_p99_us)
L_AN50=$(get lmdb_ancestors_p50_us) L_AN99=$(get lmdb_ancestors_p99_us)
L_ING=$(get lmdb_edges_per_s)
K_RC50=$(get kuzu_rootcause_p50_us) K_RC99=$(get kuzu_rootcause_p99_us)
K_AN50=$(get kuzu_ancestors_p50_us) K_AN99=$(get kuzu_ancestors_p99_us)

verdict() { # value-is-better-when-lower: lmdb peer target_ratio
	awk -v l="$1" -v p="$2" -v t="$3" 'BEGIN{ if (p == "NaN" || l == "NaN") print "n/a";
		else if (p / l >= t) print "met"; else print "**not met**" }'
}
V_RC=$(verdict "$L_RC99" "$SQ_RC99" 1) V_AN=$(verdict "$L_AN99" "$SQ_AN99" 1)
V_KRC=$(verdict "$L_RC99" "$K_RC99" 100) V_KAN=$(verdict "$L_AN99" "$K_AN99" 100)
V_KRC50=$(verdict "$L_RC50" "$K_RC50" 100) V_KAN50=$(verdict "$L_AN50" "$K_AN50" 100)
V_ING=$(awk -v l="$L_ING" -v s="$SQ_ING" 'BEGIN{ print (l+0 >= s+0) ? "met" : "**not met**" }')
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "## Causal graph store (bench/graph)"
	echo
	echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), load average $LOAD (a shared 2-vCPU VM: other"
	echo "builds and tests were running; numbers are noisy, re-run on a quiet machine)."
	echo "Graph: $(get nodes) nodes, $(get edges) edges (gen.h: time-ordered, local, ~3 causes per"
	echo "node, 1 hub process per 1000 nodes fanning out to ~300). Queries over $(get symptoms)"
	echo "symptoms, one read transaction per query, after a warm-up pass; each query timed in"
	echo "$(get passes) separate passes and its fastest time kept (the same for every system: it filters"
	echo "preemptions by the other jobs on this machine, not the cost of the query); mean"
	echo "ancestor set $(get anc_mean) nodes, mean chain $(get chain_mean) nodes. Every system's"
	echo "answers were checked equal to LMDB's (chains node by node, ancestor counts)."
	echo
	echo "| query | kprobe (LMDB) p50 / p99 | SQLite best p50 / p99 | Kuzu p50 / p99 |"
	echo "|---|---|---|---|"
	echo "| root cause (8 steps) | $L_RC50 / $L_RC99 us | $SQ_RC50 / $SQ_RC99 us | $K_RC50 / $K_RC99 us |"
	echo "| 6-hop ancestor set | $L_AN50 / $L_AN99 us | $SQ_AN50 / $SQ_AN99 us | $K_AN50 / $K_AN99 us |"
	echo "| 6-hop ancestors + edges | $(get lmdb_ancestors_edges_p50_us) / $(get lmdb_ancestors_edges_p99_us) us | | |"
	echo
	echo "| ingest (durable commits every $(get batch) edges) | edges/s (wall) | edges per CPU-second | bytes passed to write calls per edge | on disk |"
	echo "|---|---|---|---|---|"
	for t in lmdb sqlite_index sqlite_clustered; do
		case $t in
		lmdb) name="kprobe (LMDB, fdatasync per commit)" ;;
		sqlite_index) name="SQLite, rowid table + covering index (WAL, synchronous=FULL)" ;;
		sqlite_clustered) name="SQLite, edges clustered WITHOUT ROWID (WAL, synchronous=FULL)" ;;
		esac
		echo "| $name | $(get ${t}_edges_per_s) | $(get ${t}_edges_per_cpu_s) | $(get ${t}_written_per_edge) | $(awk -v b="$(get ${t}_bytes)" 'BEGIN{printf "%.0f MB", b/1e6}') |"
	done
	echo "| Kuzu COPY FROM CSV (bulk loader, not comparable) | load $(get kuzu_load_s) s | | | |"
	echo
	echo "Ratios (peer / kprobe; targets from issue 4):"
	echo
	echo "- root cause p99 vs SQLite's best p99: $(ratio "$SQ_RC99" "$L_RC99")x (target >= 1: $V_RC)"
	echo "- ancestors p99 vs SQLite's best p99: $(ratio "$SQ_AN99" "$L_AN99")x (target >= 1: $V_AN)"
	echo "- root cause vs Kuzu: p50 $(ratio "$K_RC50" "$L_RC50")x ($V_KRC50), p99 $(ratio "$K_RC99" "$L_RC99")x ($V_KRC) (target >= 100)"
	echo "- ancestors vs Kuzu: p50 $(ratio "$K_AN50" "$L_AN50")x ($V_KAN50), p99 $(ratio "$K_AN99" "$L_AN99")x ($V_KAN) (target >= 100)"
	echo "- edge ingest vs SQLite's best: $(ratio "$L_ING" "$SQ_ING")x (target >= 1: $V_ING); per CPU-second:"
	echo "  $(ratio "$(get lmdb_edges_per_cpu_s)" "$(maxv "$(get sqlite_index_edges_per_cpu_s)" "$(get sqlite_clustered_edges_per_cpu_s)")")x"
	echo "  (the wall-clock rate of a load is the most exposed to the other jobs on a busy machine;"
	echo "  CPU time and bytes written are not). SQLite's bytes include its final WAL checkpoint."
	echo "  kprobe writes more per edge: it keeps both directions (out lists are keyed by the"
	echo "  older cause, so each commit rewrites pages spread over recent history; in edges are"
	echo "  stored per block of 64 node ids, each changed block rewritten whole once per commit)"
	echo "  and a time index, where the SQLite layouts here keep the in direction only; bigger"
	echo "  commits amortise it (graph format 1 measured 206 B/edge at 10k edges per commit, 141 at 50k)."
	echo
	echo "Graph format 2 (graph/gstore.c): the in direction is keyed by block (node id >> 6), the"
	echo "value holding 65 u32 offsets and the 16-byte items of those 64 nodes, in LMDB overflow"
	echo "pages; the ancestor BFS reads each block of a level once (sorted), then expands the level"
	echo "in queue order, prefetching each node's items 8 nodes ahead. Format 1 (one B-tree key per"
	echo "node, duplicate items) measured 70.95 / 199.01 us p50 / p99 here on 2026-11-22 12:49 UTC."
	echo
	echo "SQLite per query: the best of four ways (rowid table + covering index on"
	echo "(dst, weight DESC, src DESC, kind), or the edges clustered on that key; each as a C loop of"
	echo "prepared statements and as one recursive CTE), 1 GiB cache, mmap, WAL; individual numbers"
	echo "are in bench/out/graph/results.txt. Kuzu ${R[kuzu_symptoms]:+0.11.3 (npm), default threads}: one prepared Cypher"
	echo "query per root-cause step (ORDER BY e.weight DESC, a.id DESC LIMIT 9), and"
	echo "\`MATCH (a)-[:E*1..6]->(b {id: \$id}) RETURN count(DISTINCT a.id)\` for the ancestors."
	[ -n "$KUZU_NOTE" ] && echo && echo "Kuzu was not measured in this run: $KUZU_NOTE."
	echo "Sync modes: LMDB default (fdatasync of data, then meta page, per commit: durable);"
	echo "SQLite journal_mode=WAL + synchronous=FULL (WAL fsynced per commit: durable); both commit"
	echo "every $(get batch) edges, nodes interleaved in time order (node, then its causes); the"
	echo "loads alternate between systems, $(get load_rounds) rounds, and each system's best rate is shown."
	echo "Kuzu: COPY FROM CSV, one transaction per table, default settings (WAL, auto-checkpoint),"
	echo "4 GiB buffer pool; it is a bulk loader, so its time is not an ingest rate to compare."
} >bench/graph/RESULT.md

echo "graph: root cause p99 kprobe $L_RC99 us, SQLite best $SQ_RC99 us ($(ratio "$SQ_RC99" "$L_RC99")x, $V_RC), Kuzu $K_RC99 us ($(ratio "$K_RC99" "$L_RC99")x, $V_KRC)"
echo "graph: ancestors p99 kprobe $L_AN99 us, SQLite best $SQ_AN99 us ($(ratio "$SQ_AN99" "$L_AN99")x, $V_AN), Kuzu $K_AN99 us ($(ratio "$K_AN99" "$L_AN99")x, $V_KAN)"
echo "graph: edge ingest kprobe $L_ING/s, SQLite best $SQ_ING/s ($(ratio "$L_ING" "$SQ_ING")x, $V_ING)"
echo "graph: wrote bench/graph/RESULT.md"
