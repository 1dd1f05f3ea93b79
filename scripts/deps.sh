#!/usr/bin/env bash
# deps.sh - installs every Debian package kprobe's build and tests need, when missing.
# Called by `make run`, `make test` and `make bench`; a fresh Debian 12 machine needs nothing else.
set -euo pipefail

PKGS=(
	build-essential pkg-config make git ca-certificates
	clang llvm bpftool libbpf-dev libelf-dev zlib1g-dev   # BPF programs, CO-RE, skeletons
	liburing-dev liblz4-dev libxxhash-dev                 # agent + ingest
	liblmdb-dev libh2o-evloop-dev libwslay-dev libssl-dev # appliance
	libsqlite3-dev                                        # graph benchmark peer
	curl iproute2 procps psmisc                           # tests: real clients, cgroups, processes
	bpftrace hyperfine strace                             # benchmark peers
	chromium                                              # browser tests
)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

# Node.js builds the dashboard; the machine image ships it (nodesource). Only when it is absent
# do we take Debian's.
command -v npm >/dev/null || missing+=(nodejs npm)

if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tracefs: raw/BTF tracepoints do not need it, but bpftrace (a benchmark peer) does.
if [ "$(id -u)" -eq 0 ] && [ ! -e /sys/kernel/tracing/events ]; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
fi
exit 0
