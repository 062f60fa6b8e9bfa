# SPDX-License-Identifier: GPL-2.0
#
# Out-of-tree build of shiftfs.ko.
#
#   make                 build shiftfs.ko against $(KDIR)
#   make install         install it for $(KDIR)'s kernel (/lib/modules/<release>/
#                        updates under $(INSTALL_MOD_PATH)) and run depmod
#   make KUNIT=1         ... with the KUnit suites compiled in (tests only)
#   make CLIPPY=1        ... with clippy as the Rust compiler driver
#   make rust-analyzer   write rust-project.json for editors
#   make clean
#   make check           build everything and run the whole test suite in a VM
#   make stress          the long versions of the reliability suites, in a VM
#
# KDIR defaults to the cached debug test kernel built by tools/kernel-build;
# KDIR=/lib/modules/$(uname -r)/build works on a Rust-enabled kernel.

KDIR ?= $(shell $(CURDIR)/tools/kernel-build --print-kdir)
LLVM ?= 1
export PATH := /usr/lib/llvm-19/bin:$(PATH)

kmake = $(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=$(LLVM) \
	$(if $(filter 1,$(KUNIT)),SHIFTFS_KUNIT=y)

all: modules

# The kernel build of the last build here (as Kbuild's `shiftfs-kbuild`
# computes it). Objects of one kernel build must never be linked for
# another: Kbuild keys our own objects by it, but the kernel's module stubs
# (*.mod.o, with `struct module`) are rebuilt only when their source or
# command line changes, so a switch cleans first.
kbuild_id = $(shell { cd $(KDIR) && pwd -P && cat include/config/kernel.release \
	include/config/auto.conf; } 2>/dev/null | sha256sum | cut -c1-16)

modules:
	@test -f $(KDIR)/Makefile || { \
		echo "shiftfs: no kernel build in $(KDIR): run tools/kernel-build or set KDIR" >&2; \
		exit 1; }
	+@id=$(kbuild_id); if [ "$$(cat .kbuild-id 2>/dev/null)" != "$$id" ]; then \
		[ ! -f .kbuild-id ] || echo "shiftfs: another kernel build ($(KDIR)): cleaning first"; \
		$(kmake) -s clean && echo "$$id" >.kbuild-id; \
	fi
	$(kmake) modules

# The kernel's modules_install for this module: /lib/modules/<release>/
# updates/shiftfs.ko (under INSTALL_MOD_PATH, if set), then depmod, so that
# `modprobe shiftfs` and `mount -t shiftfs` (the fs-shiftfs alias) load it.
# Always the production module: a KUNIT=1 build is rebuilt without KUnit.
install: modules
	@if llvm-nm shiftfs.ko | grep -qi kunit; then \
		echo "shiftfs: refusing to install a module with KUnit suites" >&2; exit 1; fi
	+$(kmake) modules_install

clean:
	$(kmake) clean
	rm -f .kbuild-id

# The kernel's own `make M=... rust-analyzer` cannot find rust/Makefile when
# the kernel was built with O= (as ours is), so call its generator directly
# with the arguments rust/Makefile would pass.
rust-analyzer:
	@sysroot=$$(rustc --print sysroot); \
	edition=$$(rustc --version | awk '{split($$2, v, "."); print (v[1] > 1 || v[2] >= 87) ? 2024 : 2021}'); \
	$(KDIR)/source/scripts/generate_rust_analyzer.py \
		--cfgs='core=--cfg no_fp_fmt_parse' $$edition \
		$$(realpath $(KDIR)/source) $$(realpath $(KDIR)) \
		$$sysroot $$sysroot/lib/rustlib/src/rust/library $(CURDIR) \
		> rust-project.json
	@echo "wrote rust-project.json"

check:
	tools/test

# The long versions of the reliability suites (not part of `make check`):
# the guest suites read SHIFTFS_STRESS=long, which tools/vm-run passes on
# (fsx: 100,000 operations per configuration; stress: 6 workers for 600 s;
# lifecycle: 1,000 cycles; conformance: with link_count_max; alloc_faults:
# 3,000 operations per injection; nsfuzz: 1,000,000 operations per
# filesystem; stressng: 60 s per stressor and side). tools/stress appends
# the run's summary to Documentation/stress-results.rst. Add a suite with
# `STRESS_SUITES += NAME`; `make stress STRESS_SUITES=fsx` runs one.
STRESS_SUITES := fsx conformance stress lifecycle faults alloc_faults nsfuzz stressng hostile kernel_log
export STRESS_TIMEOUT ?= 28800

stress:
	tools/stress $(STRESS_SUITES)

.PHONY: stress

bench:
	tools/bench

.PHONY: all modules install clean rust-analyzer check bench
