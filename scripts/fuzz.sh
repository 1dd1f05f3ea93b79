#!/usr/bin/env bash
# fuzz.sh - `make fuzz`: builds each libFuzzer target in tests/fuzz/*.c with clang
# (-fsanitize=fuzzer,address,undefined) and runs it for SECONDS (default 60) on its corpus.
#
# A target names the project sources it needs on a line "// fuzz-sources: a.c b.c" and the
# libraries on "// fuzz-libs: -llz4 ...".
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
out=.output/fuzz
mkdir -p "$out"
rc=0
for t in tests/fuzz/*.c; do
	[ -f "$t" ] || continue
	name=$(basename "$t" .c)
	if [ $# -gt 0 ] && [[ " $* " != *" $name "* ]]; then continue; fi
	srcs=$(sed -n 's|^// fuzz-sources: ||p' "$t")
	libs=$(sed -n 's|^// fuzz-libs: ||p' "$t")
	echo "fuzz: building $name"
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-D_GNU_SOURCE -DKP_FUZZ -I. -I.output -std=gnu11 "$t" $srcs $libs -lpthread -o "$out/$name"
	corpus="tests/fuzz/corpus/$name"
	mkdir -p "$corpus" "$out/$name.new"
	echo "fuzz: running $name for ${secs}s"
	if ! "$out/$name" -max_total_time="$secs" -print_final_stats=1 -timeout=10 \
		-rss_limit_mb=2048 "$out/$name.new" "$corpus" 2>"$out/$name.log"; then
		echo "fuzz: $name FAILED (crash input and log in $out/)"
		tail -40 "$out/$name.log"
		rc=1
	else
		grep -E 'stat::number_of_executed_units|stat::peak_rss_mb' "$out/$name.log" | sed "s/^/fuzz: $name /"
	fi
done
exit $rc
