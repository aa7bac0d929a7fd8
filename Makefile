# SPDX-License-Identifier: Apache-2.0
# lcpfs: one non-recursive Makefile. `make V=1` shows commands; `make SAN=1`
# builds everything with address and undefined-behaviour sanitizers (into
# build-san/ so the two builds never mix).

CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
PYTHON  ?= /usr/bin/python3
PKG_CONFIG ?= pkg-config

ifeq ($(SAN),1)
BUILD   ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS :=
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

LIB_PKGS := openblas lapacke libxxhash jansson libzstd zlib
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(LIB_PKGS) fuse3)
LIB_LIBS   := $(shell $(PKG_CONFIG) --libs $(LIB_PKGS)) -lm -lpthread
FUSE_LIBS  := $(shell $(PKG_CONFIG) --libs fuse3)
TEST_LIBS  := $(shell $(PKG_CONFIG) --libs criterion)

# Decoding must give the same bytes everywhere: no FMA contraction, no
# fast-math, ever (see DESIGN.md, "Reconstruction is bit-reproducible").
WARNINGS := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wwrite-strings -Wundef -Wvla -Wformat=2 -Wno-format-nonliteral \
	-Wimplicit-fallthrough -Werror
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_GNU_SOURCE -ffp-contract=off -fno-fast-math $(WARNINGS) \
	$(CFLAGS) $(SANFLAGS) -Iinclude -Isrc $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

LIB_SRCS := $(sort $(wildcard src/common/*.c src/codec/*.c src/format/*.c src/store/*.c))
BIN_SRCS := $(sort $(wildcard src/cli/*.c src/fs/*.c))
UNIT_SRCS := $(sort $(wildcard tests/unit/*.c))
# The daemon's pure parts (no FUSE calls), unit-tested on their own.
UNIT_FS_SRCS := src/fs/fs_state.c
# The fuzz harnesses are also linked into the unit tests, which replay their
# committed corpora (tests/unit/test_fuzz_corpus.c).
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
BENCH_LIB_SRCS := $(sort $(wildcard tests/bench/lib/*.c))
BENCH_MAIN_SRCS := $(sort $(wildcard tests/bench/bench_*.c))

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
BIN_OBJS := $(BIN_SRCS:%.c=$(BUILD)/%.o)
UNIT_OBJS := $(UNIT_SRCS:%.c=$(BUILD)/%.o) $(UNIT_FS_SRCS:%.c=$(BUILD)/%.o) $(FUZZ_SRCS:%.c=$(BUILD)/%.o)
BENCH_LIB_OBJS := $(BENCH_LIB_SRCS:%.c=$(BUILD)/%.o)
BENCH_BINS := $(BENCH_MAIN_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
# Bench objects are reached only through a pattern rule; keep make from
# deleting them as intermediates (which forced a rebuild on every run).
.SECONDARY: $(BENCH_LIB_OBJS) $(BENCH_MAIN_SRCS:%.c=$(BUILD)/%.o)

LIB  := $(BUILD)/liblcpfs.a
BIN  := $(BUILD)/lcpfs
UNIT := $(BUILD)/unit-tests

.PHONY: all check test integration test-distributed bench fuzz fuzz-seeds install uninstall clean
all: $(BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(BIN): $(BIN_OBJS) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(BIN_OBJS) $(LIB) $(FUSE_LIBS) $(LIB_LIBS)

$(UNIT): $(UNIT_OBJS) $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(UNIT_OBJS) $(LIB) $(TEST_LIBS) $(LIB_LIBS)

$(BUILD)/bench/%: $(BUILD)/tests/bench/%.o $(BENCH_LIB_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(BENCH_LIB_OBJS) $(LIB) $(LIB_LIBS)

# Unit tests. Criterion prints its "Synthesis:" summary line. The seed
# builder and the benchmarks are built too, so an API change that breaks
# them fails here rather than at the next `make fuzz-seeds` or `make bench`.
check: $(UNIT) $(BUILD)/make_seeds $(BENCH_BINS)
	$(UNIT) --jobs=2

# Unit tests, then the integration scripts (real files, real mounts).
test: check $(BIN)
	LCPFS=$(abspath $(BIN)) PYTHON=$(PYTHON) scripts/run-integration.sh

# Nodes over a private GlusterFS volume and over sshfs (root, FUSE and the
# packages of scripts/install-deps.sh); known daemon defects show as XFAIL.
GATE_SO := $(BUILD)/tests/distributed/rename_gate.so
$(GATE_SO): tests/distributed/rename_gate.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(ALL_CFLAGS) -fPIC -shared -o $@ $< -ldl

test-distributed: $(BIN) $(GATE_SO)
	LCPFS=$(abspath $(BIN)) PYTHON=$(PYTHON) GATE_SO=$(abspath $(GATE_SO)) tests/distributed/run.sh

bench: $(BIN) $(BENCH_BINS)
	LCPFS=$(abspath $(BIN)) PYTHON=$(PYTHON) BENCH_DIR=$(abspath $(BUILD)/bench) scripts/run-bench.sh

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), one binary each, built with
# clang, libFuzzer, ASan and UBSan into build-fuzz/ (never mixed with the
# normal build); `make fuzz` runs each for FUZZ_SECONDS (0: replay only).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := $(filter-out -Werror $(CFLAGS) $(SANFLAGS),$(ALL_CFLAGS)) -O1 -g $(FUZZ_SAN) -DLCP_FUZZ_MAIN
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
.SECONDARY: $(FUZZ_LIB_OBJS) $(FUZZ_SRCS:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	@$(if $(Q),echo "  FUZZLD  $@")
	$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LIB_LIBS)

fuzz: $(FUZZ_BINS)
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/run-fuzz.sh

# Rewrites the seed files of tests/fuzz/corpus (committed) from the builders.
fuzz-seeds: $(BUILD)/make_seeds
	$(BUILD)/make_seeds tests/fuzz/corpus

$(BUILD)/make_seeds: $(BUILD)/tests/fuzz/make_seeds.o $(LIB)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(LIB_LIBS)

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/lcpfs
	install -m 644 man/lcpfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/lcpfs.1
	install -m 644 man/lcpfs.5 $(DESTDIR)$(PREFIX)/share/man/man5/lcpfs.5

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lcpfs $(DESTDIR)$(PREFIX)/share/man/man1/lcpfs.1 \
		$(DESTDIR)$(PREFIX)/share/man/man5/lcpfs.5

clean:
	rm -rf build build-san $(FUZZ_BUILD)

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_SRCS:%.c=$(FUZZ_BUILD)/%.d)
-include $(LIB_OBJS:.o=.d) $(BIN_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(BENCH_LIB_OBJS:.o=.d) \
	$(BENCH_MAIN_SRCS:%.c=$(BUILD)/%.d)
