#!/usr/bin/env bash
# test.sh - runs the C test runner (unit + integration), then the browser tests when present.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
bin/kprobe-test "$@" || rc=1
if [ $# -eq 0 ] && [ -x tests/e2e/run.sh ]; then
	tests/e2e/run.sh || rc=1
fi
exit $rc
