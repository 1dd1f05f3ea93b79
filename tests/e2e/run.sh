#!/usr/bin/env bash
# run.sh - the dashboard's end-to-end tests (called by scripts/test.sh, i.e. `make test`).
#
#   1. the console's unit tests (vitest: exact-ns JSON, time formatting, layout, window math);
#   2. a real appliance: a 2,000-node causal graph written in the store format
#      (bin/bench/dashboard/synthgraph), then `kprobe up --demo` — kprobed + the agent recording
#      this host, and the demo incident (payment-handler -> settlement-svc, batch-job contending)
#      recorded by the real probe;
#   3. dashboard.test.mjs: playwright-core driving Debian's chromium headless against it.
#
# Needs root (the probe loads BPF), chromium, npm and a built dashboard/dist. Without them the
# run says SKIP (and fails under KPROBE_REQUIRE_BPF=1). Screenshots and logs go to
# tests/artifacts/e2e/. Prints a closing "N passed, N failed, N skipped" line; exits non-zero on
# any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
ART=$ROOT/tests/artifacts/e2e
mkdir -p "$ART"
passed=0 failed=0 skipped=0

finish() {
	echo "e2e: $passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit $?
}
skip_all() {
	if [ "${KPROBE_REQUIRE_BPF:-0}" = 1 ]; then
		echo "not ok - e2e: cannot run: $1 (KPROBE_REQUIRE_BPF=1 makes this a failure)"
		failed=$((failed + 1))
	else
		echo "SKIP e2e: $1"
		skipped=$((skipped + 1))
	fi
	finish
}

command -v npm >/dev/null || skip_all "npm is not installed (scripts/deps.sh installs it)"
[ -x /usr/bin/chromium ] || skip_all "/usr/bin/chromium is missing (scripts/deps.sh installs Debian's chromium)"
[ -f dashboard/dist/index.html ] || skip_all "dashboard/dist is not built (run make)"
for b in bin/kprobe bin/kprobed bin/kprobe-agent bin/bench/dashboard/synthgraph; do
	[ -x "$b" ] || skip_all "$b is not built (run make)"
done

# --- 1. unit tests of the console's logic
echo "e2e: vitest (dashboard unit tests)"
if (cd dashboard && NO_COLOR=1 npx --no-install vitest run >"$ART/vitest.log" 2>&1); then
	echo "ok - dashboard unit tests ($(grep -Eo 'Tests +[0-9]+ passed' "$ART/vitest.log" | grep -Eo '[0-9]+') passed)"
	passed=$((passed + 1))
else
	echo "not ok - dashboard unit tests (see $ART/vitest.log)"
	tail -30 "$ART/vitest.log"
	failed=$((failed + 1))
fi

[ "$(id -u)" -eq 0 ] || skip_all "not root: the demo incident loads BPF programs"
[ -e /sys/kernel/btf/vmlinux ] || skip_all "no BTF (/sys/kernel/btf/vmlinux)"

# --- playwright-core from the lockfile
if [ ! tests/e2e/node_modules/.package-lock.json -nt tests/e2e/package-lock.json ]; then
	(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error) || {
		echo "not ok - npm ci in tests/e2e failed"
		failed=$((failed + 1))
		finish
	}
fi

# --- 2. the appliance with a real incident
DATA=$(mktemp -d /tmp/kprobe-e2e.XXXXXX)
AUTH_DATA=$(mktemp -d /tmp/kprobe-e2e-auth.XXXXXX)
UP_PID=
AUTH_PID=
cleanup() {
	if [ -n "$AUTH_PID" ]; then
		kill -TERM "$AUTH_PID" 2>/dev/null
		wait "$AUTH_PID" 2>/dev/null
	fi
	rm -rf "$AUTH_DATA"
	if [ -n "$UP_PID" ] && kill -0 "$UP_PID" 2>/dev/null; then
		kill -TERM "$UP_PID" 2>/dev/null
		for _ in $(seq 1 150); do kill -0 "$UP_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL -- -"$UP_PID" 2>/dev/null
	fi
	cp "$DATA/kprobe.log" "$ART/kprobe.log" 2>/dev/null
	rm -rf "$DATA"
}
trap cleanup EXIT

if ! bin/bench/dashboard/synthgraph --data "$DATA" --nodes 2000 --key synth-2000 >"$ART/synthgraph.txt" 2>&1; then
	echo "not ok - synthgraph could not write the 2,000-node graph:"; cat "$ART/synthgraph.txt"
	failed=$((failed + 1))
	finish
fi

echo "e2e: kprobe up --demo (appliance + agent on this host, the demo incident; ~30 s)"
setsid bin/kprobe up --data "$DATA" --demo --set api.port=0 --set ingest.port=0 --set otlp.port=0 \
	--set 'engine.rules.files=*/ledger/*=ledger write' \
	--set replay.capture.comms=kpe2e-client,kpe2e-server >"$ART/up.txt" 2>&1 &
UP_PID=$!
ok=
for _ in $(seq 1 1500); do
	if grep -q "to explore it" "$ART/up.txt"; then ok=1; break; fi
	if grep -q "did not complete" "$ART/up.txt" || ! kill -0 "$UP_PID" 2>/dev/null; then break; fi
	sleep 0.1
done
if [ -z "$ok" ]; then
	echo "not ok - the demo incident did not complete; kprobe up said:"
	tail -20 "$ART/up.txt"
	failed=$((failed + 1))
	finish
fi
API=$(sed -n 's/.*dashboard  http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$ART/up.txt" | head -1)
OTLP=$(sed -n 's/.*OTLP       http:\/\/127.0.0.1:\([0-9]*\)\/.*/\1/p' "$ART/up.txt" | head -1)
echo "e2e: appliance on 127.0.0.1:$API, data in $DATA"

# The browser test opens a failed payment whose chain reaches batch-job. On a busy machine the
# contention sometimes lands elsewhere (other processes take the CPU): then the demo runs once
# more on the same appliance, as `kprobe demo` itself advises.
explained() {
	curl -s "http://127.0.0.1:$API/api/v1/incidents?q=pay-&limit=500" | grep -q '"root_cause":"[^"]*batch-job'
}
for attempt in 2 3; do
	explained && break
	echo "e2e: no failed payment was explained by batch-job this time; running the demo again ($attempt/3)"
	bin/kprobe demo --quick --api "$API" --otlp "$OTLP" >"$ART/demo-$attempt.txt" 2>&1
done

# A captured incident for the replay panel: copies of the tests' replay client and server under
# the names the agent captures (replay.capture.comms above). The client gives up after 750 ms,
# the server answers after 800; a failed OTLP span names the client's pid as transaction
# txn-e2e-replay. The binaries stay in $DATA: a replay on the appliance runs the recorded path.
REPLAY_TXN=
replay_incident() {
	local dir=$DATA/replay-e2e
	mkdir -p "$dir" && cp bin/tests/replay_client "$dir/kpe2e-client" && cp bin/tests/replay_server "$dir/kpe2e-server" || return 1
	"$dir/kpe2e-server" 800 0 >"$dir/server.out" 2>&1 &
	local spid=$! port= i
	for i in $(seq 1 50); do
		port=$(sed -n 's/^port \([0-9]*\)$/\1/p' "$dir/server.out")
		[ -n "$port" ] && break
		sleep 0.1
	done
	[ -n "$port" ] || { echo "the replay server did not start"; kill $spid; return 1; }
	printf 'host=127.0.0.1\nport=%s\nrequest=GET balance\n' "$port" >"$dir/client.cfg"
	local t0 t1 cpid n=0
	t0=$(date +%s%N)
	"$dir/kpe2e-client" "$dir/client.cfg" 750 >"$dir/client.out" 2>&1 &
	cpid=$!
	wait $cpid
	t1=$(date +%s%N)
	grep -q "no answer within 750 ms" "$dir/client.out" || { echo "the client did not time out: $(cat "$dir/client.out")"; kill $spid; return 1; }
	# the server's late answer and the client's exit are in the capture store before it goes
	for i in $(seq 1 100); do
		n=$(curl -s -X POST --data "SELECT count() FROM syscalls WHERE pid = $cpid AND kind = 'exit'" \
			"http://127.0.0.1:$API/api/v1/query" | sed -n 's/.*"rows":\[\[\([0-9]*\)\]\].*/\1/p')
		[ "${n:-0}" -ge 1 ] && break
		sleep 0.1
	done
	sleep 0.3
	kill $spid; wait $spid 2>/dev/null
	[ "${n:-0}" -ge 1 ] || { echo "the client's capture did not reach the appliance"; return 1; }
	# the span begins once the client runs (its first captured call), as an instrumented
	# client's would: exec can come milliseconds after the shell forks it
	local first
	first=$(curl -s -X POST --data "SELECT min(ts) FROM syscalls WHERE pid = $cpid" \
		"http://127.0.0.1:$API/api/v1/query" | sed -n 's/.*"rows":\[\[\([0-9]*\)\]\].*/\1/p')
	[ -n "$first" ] && t0=$first
	local trace span
	trace=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
	span=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
	curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "http://127.0.0.1:$OTLP/v1/traces" --data \
		"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"replay-client\"}},{\"key\":\"process.pid\",\"value\":{\"intValue\":\"$cpid\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"kprobe-e2e\"},\"spans\":[{\"traceId\":\"$trace\",\"spanId\":\"$span\",\"name\":\"balance\",\"kind\":3,\"startTimeUnixNano\":\"$((t0 + 1000000))\",\"endTimeUnixNano\":\"$((t1 - 1000000))\",\"attributes\":[{\"key\":\"payment.id\",\"value\":{\"stringValue\":\"txn-e2e-replay\"}}],\"status\":{\"code\":2,\"message\":\"TIMEOUT: 750 ms exceeded\"}}]}]}]}" \
		| grep -q 200 || { echo "OTLP refused the span"; return 1; }
	for i in $(seq 1 150); do
		if curl -s "http://127.0.0.1:$API/api/v1/replay/processes?incident=txn-e2e-replay" | grep -q '"captured":true'; then
			REPLAY_TXN=txn-e2e-replay
			return 0
		fi
		sleep 0.1
	done
	echo "the replay incident's process was not found captured: $(curl -s "http://127.0.0.1:$API/api/v1/replay/processes?incident=txn-e2e-replay")"
	return 1
}
if ! replay_incident >"$ART/replay-incident.txt" 2>&1; then
	echo "not ok - recording the replay panel's incident: $(cat "$ART/replay-incident.txt")"
	failed=$((failed + 1))
fi

# A second, empty appliance with api.auth on: the console asks for the token and then works.
TOKEN="e2e-$$-$RANDOM"
bin/kprobed --set store.dataDir="$AUTH_DATA" --set api.port=0 --set ingest.port=0 --set otlp.port=0 \
	--set api.auth.enabled=true --set api.auth.tokens="$TOKEN" >"$ART/kprobed-auth.log" 2>&1 &
AUTH_PID=$!
AUTH_API=
for _ in $(seq 1 100); do
	AUTH_API=$(sed -n 's/^api=\([0-9]*\) .*/\1/p' "$AUTH_DATA/kprobed.ports" 2>/dev/null)
	[ -n "$AUTH_API" ] && break
	sleep 0.1
done

# --- 3. the browser
node tests/e2e/dashboard.test.mjs --url "http://127.0.0.1:$API" --artifacts "$ART" \
	${AUTH_API:+--auth-url "http://127.0.0.1:$AUTH_API" --auth-token "$TOKEN"} \
	${REPLAY_TXN:+--replay-txn "$REPLAY_TXN"} | tee "$ART/browser.txt"
p=$(sed -n 's/^browser: \([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' "$ART/browser.txt")
f=$(sed -n 's/^browser: \([0-9]*\) passed, \([0-9]*\) failed.*/\2/p' "$ART/browser.txt")
if [ -z "$p" ]; then
	echo "not ok - the browser tests did not finish"
	failed=$((failed + 1))
else
	passed=$((passed + p))
	failed=$((failed + f))
fi
finish
