#!/usr/bin/env bash
# run.sh - issue 3's store benchmark: kprobe's embedded event store against ClickHouse (Debian's
# 18.16, with its default LZ4 and with server-wide ZSTD) and DuckDB (npm @duckdb/node-api), on
# the same deterministic synthetic events. Measures ingest events/s, bytes per event on disk and
# five incident queries; writes bench/store/RESULT.md and prints the ratios.
#
#   BENCH_EVENTS=50000000   events to generate (5000000 for a quick run)
#   BENCH_RUNS=5            timed runs per query (after one warm-up); the median is reported
#   BENCH_PEERS="clickhouse-lz4 clickhouse-zstd duckdb"   which peers to run
#   BENCH_INGEST=wire       our ingest figure: `wire` = the frames sent over TCP to a real kprobed
#                           (agent protocol -> WAL fsync -> ack, then its store); `store` =
#                           store_append + store_flush in one process. The queries always run on
#                           the in-process load (it also carries each event's transaction id).
#   BENCH_DIR=bench/out/store   scratch space (tens of GB at 50M events; removed afterwards
#                           unless BENCH_KEEP=1)
set -uo pipefail
cd "$(dirname "$0")/../.."
N=${BENCH_EVENTS:-50000000}
RUNS=${BENCH_RUNS:-5}
PEERS=${BENCH_PEERS:-clickhouse-lz4 clickhouse-zstd duckdb}
INGEST=${BENCH_INGEST:-wire}
W=${BENCH_DIR:-bench/out/store}
HERE=bench/store
SB=.output/bench/storebench
log() { echo "bench/store: $*" >&2; }
die() { log "$*"; exit 1; }

mkdir -p "$W"
W=$(cd "$W" && pwd)
cleanup() {
	for d in "$W"/ch-*; do [ -d "$d" ] && "$HERE/clickhouse.sh" stop "$d"; done
	[ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"/ch-* "$W"/ours "$W"/duck.db* "$W"/in.*
}
trap cleanup EXIT

# ---------------------------------------------------------------- build and peers
[ -f .output/libkp_store.a ] || make --no-print-directory all >/dev/null || die "build failed"
mkdir -p .output/bench
cc -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -I. -I.output \
	-pthread "$HERE/storebench.c" .output/libkp_store.a .output/libkp_wire.a .output/libkp_common.a \
	-llz4 -lxxhash -lm -o "$SB" || die "storebench build failed"
if [[ " $PEERS " == *" clickhouse"* ]] && ! command -v clickhouse-server >/dev/null; then
	log "installing clickhouse-server clickhouse-client (Debian)"
	SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends clickhouse-server clickhouse-client >/dev/null ||
		die "cannot install clickhouse-server"
fi
if [[ " $PEERS " == *" duckdb "* ]]; then
	# npm install, not ci: npm 11's ci rejects the lockfile npm install writes for
	# @duckdb/node-api (it wants entries for the other platforms' optional bindings)
	(cd "$HERE" && { [ -d node_modules/@duckdb/node-api ] ||
		npm install --no-audit --no-fund --loglevel=error; }) || die "npm install in $HERE failed"
fi

# ---------------------------------------------------------------- ours
log "generating $N events (agent frames) ..."
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
$SB gen "$N" frames "$W/in.frames" "$W/params" || die "generator failed"
. "$W/params"
log "span ${SPAN_S}s; Q1 pid $Q1_PID ($Q1_ROWS rows expected), Q5 txn $Q5_TXN"
rm -rf "$W/ours"
kv() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p" <<<"$2"; }
declare -A R
# The queries run on a store loaded in-process (store_append + store_flush: the same frames,
# plus each event's transaction id, which reaches a real appliance from spans instead).
log "loading into kprobe's store (store_append + store_flush, durable) ..."
ours_load=$($SB load "$W/ours" "$W/in.frames") || die "load failed"
log "ours (store path): $ours_load"
R[ours,store_ingest]=$(kv events_per_s "$ours_load")
R[ours,bpe]=$(kv bytes_per_event "$ours_load")
case "$INGEST" in
wire)
	# The ingest figure: the same frames over TCP to a real kprobed, as agents send them,
	# until every frame is acked (in its WAL and fsynced, group commit).
	log "sending the frames to kprobed's ingest server (agent protocol -> WAL fsync -> ack) ..."
	rm -rf "$W/wire"
	mkdir -p "$W/wire"
	bin/kprobed --set store.dataDir="$W/wire" --set api.port=0 --set ingest.port=0 \
		--set otlp.port=0 >"$W/wire/kprobed.log" 2>&1 &
	KPD=$!
	IPORT=
	for _ in $(seq 1 100); do
		IPORT=$(sed -n 's/.*ingest=\([0-9]*\).*/\1/p' "$W/wire/kprobed.ports" 2>/dev/null)
		[ -n "$IPORT" ] && break
		sleep 0.1
	done
	[ -n "$IPORT" ] || { kill $KPD; die "kprobed did not start (see $W/wire/kprobed.log)"; }
	wire_load=$($SB send "$IPORT" "$W/in.frames") || { kill $KPD; die "wire ingest failed"; }
	kill -TERM $KPD
	wait $KPD
	log "ours (wire): $wire_load"
	R[ours,ingest]=$(kv events_per_s "$wire_load")
	;;
store) R[ours,ingest]=${R[ours,store_ingest]} ;;
*) die "BENCH_INGEST must be wire or store" ;;
esac
rm -f "$W/in.frames"
$SB colstats "$W/ours" > "$W/colstats.txt"

OQ=(
	"SELECT * FROM events WHERE pid = $Q1_PID AND ts BETWEEN $Q1_T1 AND $Q1_T2 ORDER BY ts"
	"SELECT comm, count() AS writes, max(dur) AS slowest FROM events WHERE type = 'write' GROUP BY comm ORDER BY slowest DESC LIMIT 10"
	"SELECT bucket(ts, 1s) AS sec, type, count() AS n FROM events WHERE ts >= $Q3_T1 AND ts < $Q3_T2 GROUP BY sec, type ORDER BY sec, type"
	"SELECT service, p99(dur) AS p99 FROM events GROUP BY service ORDER BY p99 DESC"
	"SELECT * FROM events WHERE txn = '$Q5_TXN' ORDER BY ts"
)
for i in 0 1 2 3 4; do
	out=$($SB query "$W/ours" "$RUNS" "${OQ[$i]}") || die "query Q$((i + 1)) failed"
	R[ours,q$((i + 1))]=$(kv ms "$out")
	R[ours,r$((i + 1))]=$(kv rows "$out")
	log "ours Q$((i + 1)): $out"
done

# ---------------------------------------------------------------- ClickHouse
CHQ=(
	"SELECT * FROM kernel_events WHERE pid = $Q1_PID AND timestamp_ns BETWEEN $Q1_T1 AND $Q1_T2 ORDER BY timestamp_ns"
	"SELECT metadata.value[indexOf(metadata.key, 'comm')] AS comm, count() AS writes, max(duration_ns) AS slowest FROM kernel_events WHERE event_type = 'write' GROUP BY comm ORDER BY slowest DESC LIMIT 10"
	"SELECT intDiv(timestamp_ns, 1000000000) AS sec, event_type, count() AS n FROM kernel_events WHERE timestamp_ns >= $Q3_T1 AND timestamp_ns < $Q3_T2 GROUP BY sec, event_type ORDER BY sec, event_type"
	"SELECT service, quantile(0.99)(duration_ns) AS p99 FROM kernel_events GROUP BY service ORDER BY p99 DESC"
	"SELECT * FROM kernel_events WHERE transaction_id = '$Q5_TXN' ORDER BY timestamp_ns"
)
# The original schema (seeds/004), adapted to 18.16: Map(String, String) -> Nested(key, value)
# (two arrays), LowCardinality behind allow_experimental_low_cardinality_type, no per-column
# codecs, and no data-skipping (bloom filter) indexes: 18.16 has none.
CH_DDL="CREATE TABLE kernel_events (timestamp_ns UInt64, pid UInt32, tid UInt32, cpu UInt16,
  event_type LowCardinality(String), duration_ns UInt64, service LowCardinality(String),
  transaction_id String, metadata Nested(key String, value String))
ENGINE = MergeTree() PARTITION BY toDate(intDiv(timestamp_ns, 1000000000))
ORDER BY (timestamp_ns, pid) SETTINGS index_granularity = 8192"

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_clickhouse() { # $1 = lz4 | zstd
	local codec=$1 d="$W/ch-$1" out port
	rm -rf "$d"
	out=$("$HERE/clickhouse.sh" start "$d" "$codec") || { log "clickhouse ($codec) did not start"; return 1; }
	port=${out% *}
	local url="http://127.0.0.1:$port/"
	curl -sf "$url" --data-binary "$CH_DDL" ||
		{ log "CREATE TABLE failed"; "$HERE/clickhouse.sh" stop "$d"; return 1; }
	[ -f "$W/in.rowbinary" ] || $SB gen "$N" rowbinary "$W/in.rowbinary" "$W/params.ch" ||
		{ log "generator failed"; return 1; }
	log "clickhouse-$codec: loading RowBinary over HTTP ..."
	local t0 t1
	t0=$(date +%s.%N)
	# -T streams the file (--data-binary @file would read gigabytes into curl's memory)
	curl -sf -X POST -T "$W/in.rowbinary" -H 'Content-Type: application/octet-stream' \
		"${url}?query=INSERT%20INTO%20kernel_events%20FORMAT%20RowBinary" ||
		{ log "INSERT failed"; "$HERE/clickhouse.sh" stop "$d"; return 1; }
	t1=$(date +%s.%N)
	local rows
	rows=$(curl -sf "$url" --data-binary "SELECT count() FROM kernel_events")
	R[ch-$codec,ingest]=$(awk -v n="$rows" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
	# its best compression: merge what the insert left in several parts (not timed)
	curl -sf "$url" --data-binary "OPTIMIZE TABLE kernel_events FINAL" >/dev/null
	local bytes
	bytes=$(curl -sf "$url" --data-binary "SELECT sum(bytes_on_disk) FROM system.parts WHERE table = 'kernel_events' AND active")
	R[ch-$codec,bpe]=$(awk -v b="$bytes" -v n="$rows" 'BEGIN {printf "%.3f", b / n}')
	log "clickhouse-$codec: $rows rows, ${R[ch-$codec,ingest]} events/s, ${R[ch-$codec,bpe]} B/event"
	for i in 0 1 2 3 4; do
		local times=() n=0
		for k in $(seq 0 "$RUNS"); do
			local tt
			tt=$(curl -s -o "$W/ch.out" -w '%{time_total}' "${url}?query=$(python3 -c 'import sys,urllib.parse; print(urllib.parse.quote(sys.argv[1] + " FORMAT JSONCompact"))' "${CHQ[$i]}")")
			[ "$k" -gt 0 ] && times+=("$tt")
		done
		n=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$W/ch.out" 2>/dev/null || echo "?")
		R[ch-$codec,q$((i + 1))]=$(printf '%s\n' "${times[@]}" | median | awk '{printf "%.3f", $1 * 1000}')
		R[ch-$codec,r$((i + 1))]=$n
		log "clickhouse-$codec Q$((i + 1)): ${R[ch-$codec,q$((i + 1))]} ms, $n rows"
	done
	"$HERE/clickhouse.sh" stop "$d"
	rm -rf "$d"
}

for p in $PEERS; do
	case $p in
	clickhouse-lz4) run_clickhouse lz4 || R[ch-lz4,failed]=1 ;;
	clickhouse-zstd) run_clickhouse zstd || R[ch-zstd,failed]=1 ;;
	esac
done
rm -f "$W/in.rowbinary"

# ---------------------------------------------------------------- DuckDB
DQ=(
	"SELECT * FROM kernel_events WHERE pid = $Q1_PID AND timestamp_ns BETWEEN $Q1_T1 AND $Q1_T2 ORDER BY timestamp_ns"
	"SELECT map_extract_value(metadata, 'comm') AS comm, count(*) AS writes, max(duration_ns) AS slowest FROM kernel_events WHERE event_type = 'write' GROUP BY comm ORDER BY slowest DESC LIMIT 10"
	"SELECT timestamp_ns // 1000000000 AS sec, event_type, count(*) AS n FROM kernel_events WHERE timestamp_ns >= $Q3_T1 AND timestamp_ns < $Q3_T2 GROUP BY sec, event_type ORDER BY sec, event_type"
	"SELECT service, quantile_disc(duration_ns, 0.99) AS p99 FROM kernel_events GROUP BY service ORDER BY p99 DESC"
	"SELECT * FROM kernel_events WHERE transaction_id = '$Q5_TXN' ORDER BY timestamp_ns"
)
if [[ " $PEERS " == *" duckdb "* ]]; then
	log "duckdb: generating CSV ..."
	$SB gen "$N" csv "$W/in.csv" "$W/params.duck" || die "generator failed"
	log "duckdb: loading (INSERT ... FROM read_csv, CHECKPOINT) and querying ..."
	if dj=$(node "$HERE/duckdb.mjs" "$W/duck.db" "$W/in.csv" "$RUNS" "${DQ[@]}"); then
		log "duckdb: $dj"
		R[duck,ingest]=$(python3 -c 'import json,sys; print("%.0f" % json.loads(sys.argv[1])["events_per_s"])' "$dj")
		R[duck,bpe]=$(python3 -c 'import json,sys; print("%.3f" % json.loads(sys.argv[1])["bytes_per_event"])' "$dj")
		for i in 1 2 3 4 5; do
			R[duck,q$i]=$(python3 -c 'import json,sys; print("%.3f" % json.loads(sys.argv[1])["q"][int(sys.argv[2])]["ms"])' "$dj" $((i - 1)))
			R[duck,r$i]=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["q"][int(sys.argv[2])]["rows"])' "$dj" $((i - 1)))
		done
	else
		R[duck,failed]=1
	fi
	rm -f "$W/in.csv" "$W/duck.db" "$W/duck.db.wal"
fi

# ---------------------------------------------------------------- report
for k in "${!R[@]}"; do echo "$k=${R[$k]}"; done | sort > "$W/result.txt"
{ echo "LOAD_START=$LOAD_START"; echo "LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)"; } >>"$W/params"
python3 "$HERE/report.py" "$W/result.txt" "$W/params" "$W/colstats.txt" "$N" "$RUNS" "$INGEST" > "$HERE/RESULT.md" ||
	die "report failed"
cat "$HERE/RESULT.md" | sed -n '/^| system/,/^$/p'
grep -E '^- (ingest|bytes|Q[1-5])' "$HERE/RESULT.md" || true
