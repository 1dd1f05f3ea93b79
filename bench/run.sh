#!/usr/bin/env bash
# run.sh - `make bench`: runs every benchmark (bench/<name>/run.sh, or those named as arguments)
# and assembles bench/RESULTS.md from their sections, with the date and the machine.
#
# Each bench/<name>/run.sh measures kprobe and its peer in the same run, prints progress and its
# ratios, and writes its section (markdown) to bench/<name>/RESULT.md.
set -uo pipefail
cd "$(dirname "$0")/.."
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	for d in bench/*/run.sh; do names+=("$(basename "$(dirname "$d")")"); done
fi
rc=0
for n in "${names[@]}"; do
	echo "== bench $n"
	if ! "bench/$n/run.sh"; then
		echo "bench $n FAILED"
		rc=1
	fi
done

{
	echo "# Benchmark results"
	echo
	echo "Assembled by \`make bench\` on $(date -u +%Y-%m-%d) from each benchmark's last run."
	echo "Machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')),"
	echo "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, kernel $(uname -r),"
	echo "$(. /etc/os-release && echo "$PRETTY_NAME")."
	echo "Each section names its own date; numbers from a noisy 2-vCPU VM, re-run before relying on them."
	for d in bench/*/RESULT.md; do
		[ -f "$d" ] || continue
		echo
		cat "$d"
	done
} > bench/RESULTS.md
echo "bench: wrote bench/RESULTS.md"
exit $rc
