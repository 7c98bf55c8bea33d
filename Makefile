# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# make            build every BPF object, skeleton and binary into build/
# make test       run all tests (root: BPF, netns)      make V=1  show commands
# make bench      run all benchmarks (make bench-NAME: one)  make demo  the demo
# make install    binaries, units, man pages, configs (PREFIX, DESTDIR)
# make format     apply .clang-format to the C sources (make test checks it)
#
# Layout the rules rely on:
#   bpf/NAME.bpf.c        -> build/NAME.bpf.o -> build/NAME.skel.h
#                            (kernel types from build/vmlinux.h, made from
#                            the running kernel's BTF; no glibc headers)
#   user/common/*.c       -> build/libaiblcommon.a (shared by the programs;
#                            each links only the members it calls)
#   user/TOOL/*.c         -> build/TOOL, the product: aibld, aibl-agent, aiblctl
#   lab/TOOL/*.c          -> build/TOOL, lab tools: aibl-simnode, aibl-loadgen
#                            (main.c holds main(); the rest also goes to
#                            build/libTOOL.a so tests can link it)
#   tests/lib/*.c         -> build/libaibltest.a
#   tests/DIR/test_*.c    -> build/tests/DIR/test_*, linked with the other
#                            tests/DIR/*.c and the tool libraries its
#                            Makefile.inc names (TEST_USES)
.DELETE_ON_ERROR:
.SECONDARY:
.SUFFIXES:

BUILD ?= build
# one spelling per directory: the dependency files name their targets as
# BUILD was given, and a build dir inside the tree given once absolute
# (BUILD=$$PWD/build) left .d files whose targets the relative spelling
# never matched, so a header change did not rebuild those objects
override BUILD := $(patsubst $(CURDIR)/%,%,$(BUILD))
CLANG ?= clang
BPFTOOL ?= bpftool
CC ?= gcc
AR ?= ar

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

ARCH := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')

# Capacity overrides, e.g. make EXTRA_DEFINES=-DAIBL_MAX_CONNS=1024
EXTRA_DEFINES ?=

# The BPF programs read the kernel's types from $(BUILD)/vmlinux.h (the
# BTF of the kernel below, e.g. make VMLINUX_BTF=/path/to/vmlinux for
# another one), the missing #defines from bpf/aibl_uapi.h, and from the
# system only libbpf's <bpf/*.h>: no glibc, no multiarch directory. They
# read only uapi structs (packet headers, xdp_md, bpf_fib_lookup), whose
# layout is fixed, so they need no CO-RE relocations
# (BPF_NO_PRESERVE_ACCESS_INDEX) and load without kernel BTF, as before.
VMLINUX_BTF ?= /sys/kernel/btf/vmlinux
BPF_CFLAGS := -g -O2 -target bpf -D__TARGET_ARCH_$(ARCH) -DBPF_NO_PRESERVE_ACCESS_INDEX \
	-Wall -Werror -I $(BUILD) -I bpf -I include $(EXTRA_DEFINES)

SAN ?=
CFLAGS ?= -g -O2
CFLAGS += -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers \
	-std=gnu11 -D_GNU_SOURCE -I include -I user/common -I $(BUILD) \
	-MMD -MP $(EXTRA_DEFINES) $(SAN)
LDFLAGS += $(SAN)

# What each program links, beyond libaiblcommon.a
LIBBPF_LIBS := -lbpf -lelf -lz
aibld_LDLIBS := $(LIBBPF_LIBS) -lnl-route-3 -lnl-3 -lyaml -ljansson -lmicrohttpd -lcurl \
	-lxxhash -lcrypto -lpthread -lm
aibl-agent_LDLIBS := $(LIBBPF_LIBS) -ljansson -lmicrohttpd -lcurl -lxxhash -lcrypto \
	-lglib-2.0 -lpthread -lm -ldl
aiblctl_LDLIBS := $(LIBBPF_LIBS) -ljansson -lcurl -lm
aibl-simnode_LDLIBS := -ljansson -lmicrohttpd -lxxhash -lpthread -lm
aibl-loadgen_LDLIBS := -ljansson -lcurl -lpthread -lm
# what tests that call libaiblcommon.a directly need (auth, report, log)
COMMON_LDLIBS := -ljansson -lmicrohttpd -lxxhash -lcrypto -lpthread -lm

# a build with NO_DEPS (below) leaves its own stamp: a later make in the
# same tree still checks the packages its tests need
DEPS_STAMP := $(BUILD)/$(if $(NO_DEPS),.deps-skipped,.deps-ok)

# Flags asked of installed tools (pkg-config) are asked after
# scripts/deps.sh has installed them, in $(BUILD)/config.mk: computed when
# the Makefile is read, they would come out empty on a bare machine. make
# remakes the file, then restarts and reads it; clean and deps need neither.
CONFIG_MK := $(BUILD)/config.mk
ifneq ($(if $(MAKECMDGOALS),$(filter-out clean deps uninstall,$(MAKECMDGOALS)),all),)
-include $(CONFIG_MK)
endif
CFLAGS += $(NL_CFLAGS)

BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.bpf.o,$(BPF_SRCS))
SKELS := $(patsubst bpf/%.bpf.c,$(BUILD)/%.skel.h,$(BPF_SRCS))

COMMON_SRCS := $(wildcard user/common/*.c)
COMMON_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(COMMON_SRCS))
COMMON_LIB := $(BUILD)/libaiblcommon.a

TOOL_DIRS := $(patsubst %/main.c,%,$(wildcard user/*/main.c lab/*/main.c))
TOOLS := $(notdir $(TOOL_DIRS))
BINS := $(addprefix $(BUILD)/,$(TOOLS))

TESTLIB_SRCS := $(wildcard tests/lib/*.c)
TESTLIB_OBJS := $(patsubst %.c,$(BUILD)/obj/%.o,$(TESTLIB_SRCS))
TESTLIB := $(BUILD)/libaibltest.a

TEST_SRCS := $(wildcard tests/*/test_*.c)
TEST_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRCS))
# helpers beside the tests of one folder (e.g. tests/bpf/xdp_env.c), linked
# into each test of that folder
TESTDIR_SRCS = $(filter-out tests/lib/% tests/fake/% tests/fuzz/% $(TEST_SRCS) $(BENCH_SRCS), \
	$(wildcard tests/*/*.c))

# Benchmark programs: tests/bench/bench_*.c -> build/tests/bench/bench_*
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCH_BINS := $(patsubst tests/%.c,$(BUILD)/tests/%,$(BENCH_SRCS))

# Extra test artefacts (shared objects such as a fake NVML) register here.
TEST_EXTRA :=

.PHONY: all deps test bench demo clean install fuzz sanitize format FORCE
all: $(BPF_OBJS) $(SKELS) $(BINS)

# ---- dependencies: scripts/deps.sh installs what is missing ----
# NO_DEPS=1 skips the check: a package build (debian/rules), where
# dpkg-buildpackage has checked Build-Depends, and where the packages only
# the tests, lab and benchmarks use are neither there nor to be installed.
NO_DEPS ?=
$(DEPS_STAMP): scripts/deps.sh
	$(call msg,DEPS,$(if $(NO_DEPS),skipped (NO_DEPS),checking Debian packages))
	$(Q)mkdir -p $(BUILD) && $(if $(NO_DEPS),,scripts/deps.sh &&) touch $@

deps:
	$(Q)scripts/deps.sh

$(CONFIG_MK): $(DEPS_STAMP)
	$(call msg,GEN,$@)
	$(Q)nl=$$(pkg-config --cflags libnl-3.0 libnl-route-3.0) && \
		glib=$$(pkg-config --cflags glib-2.0) && \
		printf 'NL_CFLAGS := %s\nGLIB_CFLAGS := %s\n' "$$nl" "$$glib" >$@.tmp && \
		mv $@.tmp $@

# ---- build flags ----
# The flags every object is built with, rewritten only when they change:
# make EXTRA_DEFINES=-DAIBL_MAX_CONNS=... (or CFLAGS, SAN) then rebuilds
# every object, the BPF programs and the userspace that share their sizes
FLAGS_STAMP := $(BUILD)/flags
# the build directory as named: BUILD=build and BUILD=$(CURDIR)/build (the
# install tests') build the same, and must not rebuild each other
FLAGS_TEXT := $(subst -I $(BUILD) ,-I <build> ,$(CLANG) $(BPF_CFLAGS) | $(CC) $(CPPFLAGS) $(CFLAGS) | $(LDFLAGS))
$(FLAGS_STAMP): FORCE
	$(Q)mkdir -p $(@D)
	$(Q)printf '%s\n' '$(subst ','\'',$(FLAGS_TEXT))' >$@.tmp && \
		{ cmp -s $@.tmp $@ && rm -f $@.tmp || mv $@.tmp $@; }
FORCE:

# ---- BPF ----
# vmlinux.h follows the kernel: a reboot into another one remakes it
$(BUILD)/vmlinux.h: $(wildcard $(VMLINUX_BTF)) | $(DEPS_STAMP)
	$(call msg,GEN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)test -r $(VMLINUX_BTF) || \
		{ echo "no kernel BTF at $(VMLINUX_BTF): set VMLINUX_BTF=" >&2; exit 1; }
	$(Q)$(BPFTOOL) btf dump file $(VMLINUX_BTF) format c >$@.tmp && mv $@.tmp $@

$(BUILD)/%.bpf.o: bpf/%.bpf.c $(BUILD)/vmlinux.h $(wildcard include/*.h) $(wildcard bpf/*.h) \
		$(FLAGS_STAMP)
	$(call msg,BPF,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@.tmp
	$(Q)$(BPFTOOL) gen object $@ $@.tmp && rm -f $@.tmp

$(BUILD)/%.skel.h: $(BUILD)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@

# ---- userspace ----
# Objects wait for the deps and their generated headers; only those that
# include a skeleton (or vmlinux.h) wait for it and are rebuilt with it.
$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | $(DEPS_STAMP) $(CONFIG_MK)
	$(call msg,CC,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(if $(filter tests/%,$<),-I tests/lib) -c $< -o $@

$(BUILD)/obj/user/aibld/dataplane.o: $(BUILD)/aibl_xdp.skel.h
$(BUILD)/obj/user/aibl-agent/decap.o: $(BUILD)/aibl_decap.skel.h
# the hint table's indexes (GLib's headers live under their own dirs)
$(BUILD)/obj/user/aibl-agent/hints.o: CFLAGS += $(GLIB_CFLAGS)
$(BUILD)/obj/tests/bpf/test_decap.o: $(BUILD)/aibl_decap.skel.h
$(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/bpf/*.c)): $(BUILD)/vmlinux.h

$(COMMON_LIB): $(COMMON_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(TESTLIB): $(TESTLIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# One static library and one binary per tool directory.
define tool_rules
$(2)_LIBOBJS := $$(patsubst %.c,$$(BUILD)/obj/%.o,$$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c)))
$$(BUILD)/lib$(2).a: $$($(2)_LIBOBJS)
	$$(call msg,AR,$$@)
	$$(Q)rm -f $$@ && $$(AR) rcs $$@ $$^
$$(BUILD)/$(2): $$(BUILD)/obj/$(1)/main.o $$(BUILD)/lib$(2).a $$(COMMON_LIB)
	$$(call msg,LINK,$$@)
	$$(Q)$$(CC) $$(LDFLAGS) -o $$@ $$^ $$($(2)_LDLIBS)
endef
$(foreach d,$(TOOL_DIRS),$(eval $(call tool_rules,$(d),$(notdir $(d)))))

# A test links its object, its folder's helpers, the libraries of the
# tools it calls and what those link: tests/DIR/Makefile.inc says which,
# $(call test_uses,tests/DIR/test_NAME.c ...,TOOL ...)
define test_uses_one
$(patsubst tests/%.c,$$(BUILD)/tests/%,$(1)): $(foreach t,$(2),$$(BUILD)/lib$(t).a)
$(patsubst tests/%.c,$$(BUILD)/tests/%,$(1)): TEST_LDLIBS += $(foreach t,$(2),$$($(t)_LDLIBS))
endef
test_uses = $(foreach f,$(1),$(eval $(call test_uses_one,$(f),$(2))))
# libraries a test calls itself: $(call test_libs,tests/DIR/test_NAME.c ...,-lfoo ...)
test_libs = $(foreach f,$(1),$(eval $(patsubst tests/%.c,$$(BUILD)/tests/%,$(f)): TEST_LDLIBS += $(2)))

define testdir_helpers
$(filter $(BUILD)/tests/$(1)/%,$(TEST_BINS)): \
	$(patsubst %.c,$(BUILD)/obj/%.o,$(filter tests/$(1)/%,$(TESTDIR_SRCS)))
endef
$(foreach d,$(patsubst tests/%/,%,$(sort $(dir $(TEST_SRCS)))),$(eval $(call testdir_helpers,$(d))))

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TESTLIB) $(COMMON_LIB)
	$(call msg,LINK,$@)
	$(Q)mkdir -p $(@D)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(filter-out $(TESTLIB) $(COMMON_LIB),$(filter %.a,$^)) \
		$(TESTLIB) $(COMMON_LIB) $(sort $(TEST_LDLIBS) $(COMMON_LDLIBS))

-include tests/*/Makefile.inc

# ---- running ----
test: all $(TEST_BINS) $(TEST_EXTRA)
	$(Q)tests/run.sh $(TESTS)

# the scripts measure this build, not ./build
bench bench-%: export AIBL_BUILD := $(abspath $(BUILD))

bench: all $(TEST_BINS) $(BENCH_BINS) $(TEST_EXTRA)
	$(Q)lab/bench.sh all

bench-%: all $(TEST_BINS) $(BENCH_BINS) $(TEST_EXTRA)
	$(Q)lab/bench.sh $*

demo: all
	$(Q)lab/demo.sh $(if $(POLICY),--policy $(POLICY))

# rewrite the C sources as .clang-format says (tests/unit/test_format.sh checks)
format:
	$(Q)find bpf include user lab tests -name '*.[ch]' -not -path 'tests/data/*' | \
		xargs clang-format -i

clean:
	$(call msg,CLEAN,$(BUILD))
	$(Q)rm -rf $(BUILD)

# ---- man pages, install ----
# docs/NAME.SECTION.rst -> build/man/NAME.SECTION (rst2man, python3-docutils)
MAN_SRCS := $(wildcard docs/*.[1-8].rst)
MANS := $(patsubst docs/%.rst,$(BUILD)/man/%,$(MAN_SRCS))

.PHONY: man uninstall
man: $(MANS)

$(BUILD)/man/%: docs/%.rst | $(DEPS_STAMP)
	$(call msg,MAN,$@)
	$(Q)mkdir -p $(@D)
	$(Q)rst2man --halt=warning $< $@.tmp && mv $@.tmp $@

# make install [PREFIX=/usr/local] [DESTDIR=]: the programs (their BPF
# programs are embedded skeletons), man pages, systemd units, the sysusers
# file for the user aibl, and the example configuration in /etc/aibl unless
# one is there: an edited configuration is never overwritten (a pristine
# copy goes to the doc directory). Neither creates the user nor enables a
# unit: systemd-sysusers, systemctl enable --now aibld (docs/install.md).
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= /etc
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/aibl
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL_BINS := aibld aibl-agent aiblctl
UNITS := aibld.service aibl-agent.service
# example -> its name in $(SYSCONFDIR)/aibl
CONFS := aibl.example.yaml:aibld.yaml aibl-agent.env:aibl-agent.env
UNIT_SED := -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g'

install: $(addprefix $(BUILD)/,$(INSTALL_BINS)) $(MANS)
	$(call msg,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)for b in $(INSTALL_BINS); do \
		install -D -m 0755 $(BUILD)/$$b $(DESTDIR)$(SBINDIR)/$$b || exit; done
	$(Q)for m in $(notdir $(MANS)); do \
		install -D -m 0644 $(BUILD)/man/$$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$$m || exit; done
	$(Q)install -d -m 0755 $(DESTDIR)$(UNITDIR)
	$(Q)for u in $(UNITS); do \
		sed $(UNIT_SED) dist/systemd/$$u.in >$(DESTDIR)$(UNITDIR)/$$u && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit; done
	$(Q)install -D -m 0644 dist/sysusers.d/aibl.conf $(DESTDIR)$(SYSUSERSDIR)/aibl.conf
	$(Q)for c in $(CONFS); do \
		install -D -m 0644 etc/$${c%%:*} $(DESTDIR)$(DOCDIR)/examples/$${c%%:*} && \
		{ test -e $(DESTDIR)$(SYSCONFDIR)/aibl/$${c##*:} || \
		install -D -m 0644 etc/$${c%%:*} $(DESTDIR)$(SYSCONFDIR)/aibl/$${c##*:}; } || exit; done

# removes what install put there, except $(SYSCONFDIR)/aibl (configuration)
uninstall:
	$(call msg,UNINSTALL,$(DESTDIR)$(PREFIX))
	$(Q)rm -f $(addprefix $(DESTDIR)$(SBINDIR)/,$(INSTALL_BINS)) \
		$(foreach m,$(notdir $(MANS)),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(m)) \
		$(addprefix $(DESTDIR)$(UNITDIR)/,$(UNITS)) $(DESTDIR)$(SYSUSERSDIR)/aibl.conf \
		$(foreach c,$(CONFS),$(DESTDIR)$(DOCDIR)/examples/$(firstword $(subst :, ,$(c))))
	$(Q)rmdir $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) 2>/dev/null || true

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
