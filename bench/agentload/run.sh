#!/usr/bin/env bash
# bench/agentload/run.sh - kprobe-agent's own cost at a steady load: CPU (user + system, as a
# share of one core) and resident memory while it records and ships 50,000 events per second
# to kprobed on loopback. The load is a paced stream of 1-byte writes to /dev/null (one write
# event each; bench/agentload/paced.c), and the probe records that process only (a comm filter
# in the kernel), so the agent handles exactly that stream. Targets (issue 2): under 1% of one core and under
# 64 MiB resident (the original product claimed < 1% CPU and ~200 MB).
#
# Environment: RATE (50000), SECS (20). Needs root and a built tree.
set -uo pipefail
cd "$(dirname "$0")/../.."
RATE=${RATE:-50000}
SECS=${SECS:-20}
RESULT=bench/agentload/RESULT.md
die() { echo "bench/agentload: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (the agent loads BPF programs)"
[ -x bin/kprobe-agent ] && [ -x bin/bench/agentload/paced ] || die "run make first"

DATA=$(mktemp -d /tmp/kprobe-bench-agentload.XXXXXX)
trap 'kill $KD $AG 2>/dev/null; wait 2>/dev/null; rm -rf "$DATA"' EXIT
bin/kprobed --set store.dataDir="$DATA" --set api.port=0 --set ingest.port=0 --set otlp.port=0 \
	>"$DATA/kprobed.log" 2>&1 &
KD=$!
for i in $(seq 100); do [ -f "$DATA/kprobed.ports" ] && break; sleep 0.1; done
[ -f "$DATA/kprobed.ports" ] || die "kprobed did not start (see $DATA/kprobed.log)"
INGEST=$(sed 's/.*ingest=\([0-9]*\).*/\1/' "$DATA/kprobed.ports")
# Only the load generator is recorded (filtered in the kernel), so the agent handles exactly
# the steady stream, whatever else the machine is doing.
bin/kprobe-agent --set agent.appliance=127.0.0.1:"$INGEST" --set agent.spoolDir="$DATA/spool" \
	--set agent.statsSec=5 --set probe.filter.comms=paced --ready-file "$DATA/ready" \
	>"$DATA/agent.log" 2>&1 &
AG=$!
for i in $(seq 100); do [ -f "$DATA/ready" ] && break; sleep 0.1; done
[ -f "$DATA/ready" ] || die "the agent did not attach (see $DATA/agent.log)"
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$AG/stat"; }
HZ=$(getconf CLK_TCK)
echo "bench/agentload: $RATE writes/s for $SECS s while kprobe-agent ships to kprobed"
t0=$(date +%s.%N); c0=$(ticks)
bin/bench/agentload/paced "$RATE" "$SECS" write >"$DATA/paced.out" &
PACED=$!
rss_max=0
while kill -0 $PACED 2>/dev/null; do
	r=$(awk '/VmRSS/ {print $2}' "/proc/$AG/status")
	[ "$r" -gt "$rss_max" ] && rss_max=$r
	sleep 1
done
wait $PACED
t1=$(date +%s.%N); c1=$(ticks)
sleep 6 # one more stats line
cpu_pct=$(awk -v a="$c0" -v b="$c1" -v s="$t0" -v e="$t1" -v hz="$HZ" \
	'BEGIN { printf "%.2f", (b - a) / hz / (e - s) * 100 }')
# events/s as the agent itself counted them (its last periodic line)
evs=$(grep -o 'rate=[0-9.]*' "$DATA/agent.log" | tail -2 | head -1 | cut -d= -f2)
drops=$(grep -o 'ringbuf_drops=[0-9]*' "$DATA/agent.log" | tail -1 | cut -d= -f2)
rss_mb=$(awk -v r="$rss_max" 'BEGIN { printf "%.1f", r / 1024 }')
paced=$(cat "$DATA/paced.out")
echo "bench/agentload: agent CPU ${cpu_pct}% of one core, max RSS ${rss_mb} MiB," \
	"agent saw ${evs:-?} events/s (${paced})"
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v < t) ? "met" : "NOT met" }'; }
{
	echo "## Agent cost at a steady load (issue 2 c)"
	echo
	echo "$(date -u +%Y-%m-%d), $(nproc) vCPUs, kernel $(uname -r). kprobe-agent records this host"
	echo "and ships to kprobed on loopback while \`paced\` issues $RATE 1-byte writes per second"
	echo "for $SECS s (${paced}), recorded alone (probe.filter.comms=paced); the agent counted"
	echo "${evs:-?} events/s, ring-buffer drops: ${drops:-?}."
	echo
	echo "| measure | kprobe-agent | target | |"
	echo "|---|---|---|---|"
	echo "| CPU, user + system, share of one core | ${cpu_pct}% | < 1% | $(verdict "$cpu_pct" 1) |"
	echo "| resident memory (max over the run) | ${rss_mb} MiB | < 64 MiB | $(verdict "$rss_mb" 64) |"
	echo
	echo "The BPF programs' own time is spent in the traced process (in-kernel), not in the agent;"
	echo "bench/probe measures it per system call."
} >"$RESULT"
echo "bench/agentload: wrote $RESULT"
