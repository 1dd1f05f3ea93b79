# kprobe - one Makefile. Outputs in .output/, binaries in bin/. Quiet unless V=1.
#
#   make          build bin/kprobe-agent, bin/kprobed, bin/kprobe (and the dashboard if npm is here)
#   make test     install missing packages, build, run every test (C runner, then browser tests)
#   make run      install missing packages, build, start appliance + agent here (kprobe up --demo)
#   make bench    run the benchmarks against their peers; results in bench/RESULTS.md
#   make fuzz     run the libFuzzer targets for a bounded time (FUZZ_SECONDS each)
#   make format   apply .clang-format

.DELETE_ON_ERROR:
.SUFFIXES:

OUTPUT   := .output
CC       ?= gcc
CLANG    ?= clang
BPFTOOL  ?= bpftool
ARCH     := $(shell uname -m | sed 's/x86_64/x86/;s/aarch64/arm64/')
CFLAGS   ?= -O2 -g
CFLAGS   += -DKP_SRCDIR=\"$(CURDIR)\" -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -D_GNU_SOURCE -I. -I$(OUTPUT) \
	    -fno-strict-aliasing -pthread
LDFLAGS  += -pthread
FUZZ_SECONDS ?= 60

ifeq ($(V),1)
Q :=
msg =
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

# --------------------------------------------------------------------- sources per module
COMMON_SRC := $(wildcard common/*.c)
WIRE_SRC   := agent/wire.c agent/loop.c # shared by kprobe-agent and kprobed (ingest)
AGENT_SRC  := $(filter-out $(WIRE_SRC),$(wildcard agent/*.c))
STORE_SRC  := $(wildcard store/*.c)
GRAPH_SRC  := $(wildcard graph/*.c)
HTTPD_SRC  := $(wildcard httpd/*.c)
REPLAY_SRC := $(wildcard replay/*.c)
CLI_SRC    := $(wildcard cli/*.c)
APPL_SRC   := $(wildcard appliance/*.c)
BPF_SRC    := $(wildcard bpf/*.bpf.c)
TEST_SRC   := tests/runner.c $(wildcard tests/unit/*/*.c) $(wildcard tests/integration/*.c)
TPROG_SRC  := $(wildcard tests/progs/*.c)
# bench/probe builds its own pieces (a BPF cost ladder) in its run.sh.
BENCH_SRC  := $(filter-out %.bpf.c bench/probe/%,$(wildcard bench/*/*.c))

obj = $(patsubst %.c,$(OUTPUT)/%.o,$(1))
SKELS := $(patsubst bpf/%.bpf.c,$(OUTPUT)/bpf/%.skel.h,$(BPF_SRC))

LIB_COMMON := $(OUTPUT)/libkp_common.a
LIB_WIRE   := $(OUTPUT)/libkp_wire.a
LIB_AGENT  := $(OUTPUT)/libkp_agent.a
LIB_STORE  := $(OUTPUT)/libkp_store.a
LIB_GRAPH  := $(OUTPUT)/libkp_graph.a
LIB_HTTPD  := $(OUTPUT)/libkp_httpd.a
LIB_REPLAY := $(OUTPUT)/libkp_replay.a
LIB_CLI    := $(OUTPUT)/libkp_cli.a
LIB_APPL   := $(OUTPUT)/libkp_appliance.a

LIBS_AGENT  := -lbpf -lelf -lz -luring -llz4 -lxxhash
LIBS_SERVER := -luring -llz4 -lxxhash -llmdb -lh2o-evloop -lwslay -lssl -lcrypto -lz -lm
LIBS_ALL    := $(sort $(LIBS_AGENT) $(LIBS_SERVER))

BINS := bin/kprobe-agent bin/kprobed bin/kprobe
TPROGS := $(patsubst tests/progs/%.c,bin/tests/%,$(TPROG_SRC))
BENCH_BINS := $(patsubst bench/%.c,bin/bench/%,$(BENCH_SRC))

.PHONY: all
all: $(BINS) bin/kprobe-test $(TPROGS) $(BENCH_BINS) dashboard

# --------------------------------------------------------------------- BPF
$(OUTPUT)/vmlinux.h:
	$(call msg,BTF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp && mv $@.tmp $@

$(OUTPUT)/bpf/%.bpf.o: bpf/%.bpf.c bpf/event.h $(wildcard bpf/*.h) $(OUTPUT)/vmlinux.h
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -I$(OUTPUT) -I. -Wall -Werror \
		-Wno-unused-function -c $< -o $@
	$(Q)llvm-strip -g $@ 2>/dev/null || true

$(OUTPUT)/bpf/%.skel.h: $(OUTPUT)/bpf/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst .,_,$*)_bpf > $@.tmp && mv $@.tmp $@

# --------------------------------------------------------------------- C
$(OUTPUT)/%.o: %.c | $(SKELS)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The store's scan, decode and aggregation loops are written to be vectorised: -O3 does that
# (measured by bench/store: the aggregate queries run faster).
$(OUTPUT)/store/%.o: CFLAGS += -O3

# Archives also depend on the Makefile: moving a source between archives must rebuild both.
define archive
$(1): $(call obj,$(2)) Makefile
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@ && ar rcs $$@ $$(filter %.o,$$^)
endef
$(eval $(call archive,$(LIB_COMMON),$(COMMON_SRC)))
$(eval $(call archive,$(LIB_WIRE),$(WIRE_SRC)))
$(eval $(call archive,$(LIB_AGENT),$(AGENT_SRC)))
$(eval $(call archive,$(LIB_STORE),$(STORE_SRC)))
$(eval $(call archive,$(LIB_GRAPH),$(GRAPH_SRC)))
$(eval $(call archive,$(LIB_HTTPD),$(HTTPD_SRC)))
$(eval $(call archive,$(LIB_REPLAY),$(REPLAY_SRC)))
$(eval $(call archive,$(LIB_CLI),$(CLI_SRC)))
$(eval $(call archive,$(LIB_APPL),$(APPL_SRC)))

ALL_LIBS := $(LIB_CLI) $(LIB_APPL) $(LIB_HTTPD) $(LIB_GRAPH) $(LIB_STORE) $(LIB_REPLAY) $(LIB_AGENT) $(LIB_WIRE) \
	    $(LIB_COMMON)

# Archives are linked as one group: modules call each other in both directions (the replay CLI
# fetches recordings through the HTTP client and cli_resolve_api; the appliance builds them with
# the replay module), so no single order satisfies a one-pass link.
link = $(CC) $(LDFLAGS) $(filter %.o,$^) -Wl,--start-group $(filter %.a,$^) -Wl,--end-group

# The agent takes replay/capture.c (the replay capture probe, replay.capture.*) and what it uses.
bin/kprobe-agent: $(call obj,cmd/kprobe-agent.c) $(LIB_AGENT) $(LIB_REPLAY) $(LIB_WIRE) $(LIB_COMMON)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(link) $(LIBS_AGENT) -o $@

# kprobed takes the replay module for recordings built from stored capture records and for its
# replay workers (kprobed --replay-worker, see appliance/replayapi.c).
bin/kprobed: $(call obj,cmd/kprobed.c) $(LIB_APPL) $(LIB_HTTPD) $(LIB_GRAPH) $(LIB_STORE) $(LIB_REPLAY) \
	     $(LIB_WIRE) $(LIB_COMMON)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(link) $(LIBS_SERVER) -o $@

bin/kprobe: $(call obj,cmd/kprobe.c) $(ALL_LIBS)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(link) $(LIBS_ALL) -o $@

bin/kprobe-test: $(call obj,$(TEST_SRC)) $(ALL_LIBS)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(link) $(LIBS_ALL) -o $@

# Benchmark drivers: bench/<name>/<prog>.c -> bin/bench/<name>/<prog>, linked like bin/kprobe,
# plus the peers some benchmarks link (SQLite for the graph benchmark).
LIBS_BENCH := -lsqlite3
bin/bench/%: $(OUTPUT)/bench/%.o $(ALL_LIBS)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(link) $(LIBS_ALL) $(LIBS_BENCH) -o $@

# Small programs the tests run (workloads, replay subjects): one file each, libc only.
bin/tests/%: tests/progs/%.c
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -pthread $< -o $@

-include $(shell find $(OUTPUT) -name '*.d' 2>/dev/null)

# --------------------------------------------------------------------- dashboard
.PHONY: dashboard
dashboard:
	@if [ -f dashboard/package.json ] && command -v npm >/dev/null; then \
		$(MAKE) --no-print-directory dashboard/dist/index.html; \
	fi

DASH_SRC := $(shell find dashboard/src dashboard/index.html dashboard/package.json \
		dashboard/package-lock.json dashboard/vite.config.ts dashboard/tsconfig.json -type f \
		2>/dev/null)
# npm ci (from the lockfile) when node_modules is missing or older than the lockfile; then a type
# check and the Vite build. Unit tests (vitest) run with the browser tests (tests/e2e/run.sh).
dashboard/dist/index.html: $(DASH_SRC)
	$(call msg,VITE,dashboard/dist)
	$(Q)cd dashboard && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
		npm ci --no-audit --no-fund --loglevel=error; } \
		&& npx --no-install tsc --noEmit && npx --no-install vite build --logLevel error

# --------------------------------------------------------------------- top-level jobs
.PHONY: deps test run bench fuzz format clean
deps:
	$(Q)scripts/deps.sh

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)scripts/test.sh

run: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bin/kprobe up --demo

bench: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)bench/run.sh

fuzz: deps
	$(Q)scripts/fuzz.sh $(FUZZ_SECONDS)

format:
	$(Q)clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	$(Q)rm -rf $(OUTPUT) bin dashboard/dist
