# Tandem — the two commands a new user runs (README.md):
#   make demo   install what is missing, build, and run the main job
#   make test   install what is missing, build, and run every test
# and the rest:
#   make build  release binaries .build/release/tandem{,-cli}: tandem fully static (no dynamic loader,
#               no shared libraries — it starts in ~1 ms instead of ~2 and its resident set drops by
#               2.7 MiB); tandem-cli with the Swift runtime static and libvirt's library shared.
#   make guests the guest programs (guest-images/build)
#   make image  the guest image every backend runs (guest-images/build/image/initramfs.cpio)
#   make lab    boot Linux in Tandem's VMM inside the nested lab (QEMU TCG + kvm-amd), for hosts without VT-x/AMD-V
#   make bench  the launch benchmarks (tiny microVM, tandem --version, /bin/true, crun, runc)

SWIFT       ?= swift
RELEASE_BIN := .build/release/tandem
DEBUG_BIN   := .build/debug/tandem

.PHONY: demo test build guests image lab bench deps deps-core clean

deps:
	@scripts/install-deps.sh all

deps-core:
	@scripts/install-deps.sh core

guests: deps-core
	@$(MAKE) --no-print-directory -C guest-images
	@$(MAKE) --no-print-directory -C examples

# tandem (the launch path) is fully static; tandem-cli links libvirt's shared library, so it gets
# only the Swift runtime statically.
build: deps-core
	$(SWIFT) build -c release --disable-local-rpath --product tandem -Xswiftc -static-executable
	$(SWIFT) build -c release --disable-local-rpath --product tandem-cli --static-swift-stdlib

image: guests build
	$(RELEASE_BIN) image build

demo: deps guests build image
	@scripts/libvirtd.sh up
	@echo
	@echo "== tandem host: what this machine can run"
	@$(RELEASE_BIN) host
	@echo
	@echo "== tandem vm run --tiny hello: a tiny guest on /dev/kvm, with Tandem's own VMM"
	@$(RELEASE_BIN) vm run --tiny hello
	@echo
	@echo "== examples/countdown.S: a bare-metal guest in 30 lines of assembly, by path"
	@$(RELEASE_BIN) vm run --tiny examples/build/countdown.bin --arg 3
	@echo
	@echo "== the same compute workload as a tiny guest and as a host program"
	@$(RELEASE_BIN) vm run --tiny compute --arg 100000
	@guest-images/build/bin/compute 100000
	@echo
	@echo "== launch cost (10 runs each; make bench does 50 and adds crun and runc)"
	@python3 scripts/bench_launch.py --runs 10 --no-containers

lab: deps guests image
	$(RELEASE_BIN) lab nested --workload compute --args 1000000 --cmdline quiet --compare-qemu

test: deps guests image
	@scripts/libvirtd.sh up
	$(SWIFT) build --build-tests
	$(SWIFT) test

bench: deps guests build
	python3 scripts/bench_launch.py --runs 50

clean:
	rm -rf .build guest-images/build examples/build
