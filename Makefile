# Tandem — the two commands a new user runs (README.md):
#   make demo   install what is missing, build, and run the main job (ends in reports/latest/index.html)
#   make test   install what is missing, build, and run every test
# and the rest:
#   make build  release binaries .build/release/tandem{,-cli,-runtime}: tandem and tandem-runtime fully
#               static (no dynamic loader, no shared libraries — tandem starts in ~1 ms instead of ~2
#               and its resident set drops by 2.7 MiB); tandem-cli with the Swift runtime static and
#               libvirt's library shared.
#   make link-order  rewrite scripts/tandem.order (the order tandem's functions are linked in) from
#               valgrind traces of the launch paths, and link tandem again with it
#   make guests the guest programs (guest-images/build)
#   make image  the guest image every backend runs (guest-images/build/image/initramfs.cpio)
#   make lab    boot Linux in Tandem's VMM inside the nested lab (QEMU TCG + kvm-amd), for hosts without VT-x/AMD-V
#   make fuzz   the libFuzzer targets in Fuzz/ (the JSON reader, the OCI config reader, layer unpacking, bzImage, virtqueues, snapshot state files, the http workload), FUZZ_SECONDS each (default 60)
#   make bench  tandem bench with 10 trials and the snapshot benchmark (reports/latest), then the launch benchmark (50 runs:
#               tiny microVM, tandem ctr run vs crun and runc, idle-container density), then the OCI
#               runtime's create+start+delete vs crun and runc (50 runs back to back, 30 after idle
#               spells), the bare cgroup move under both, then signals at every step of create, run
#               and delete (30 runs each; every leftover count must be 0); then a Debian 12 image
#               (mmdebstrap + umoci) imported against skopeo + umoci unpack, two images sharing its
#               layer, and a program's start in it with tandem run, crun and runc (10 runs)

SWIFT       ?= swift
RELEASE_BIN := .build/release/tandem
DEBUG_BIN   := .build/debug/tandem

.PHONY: demo test build link-order guests image lab bench fuzz deps deps-core deps-kernel kernel clean

deps:
	@scripts/install-deps.sh all

deps-core:
	@scripts/install-deps.sh core

deps-kernel:
	@scripts/install-deps.sh kernel

# The microVM guest kernel (docs/virtio.md): a few minutes on 2 cores, cached.
kernel: deps-kernel
	@scripts/build-kernel.sh

guests: deps-core
	@$(MAKE) --no-print-directory -C guest-images
	@$(MAKE) --no-print-directory -C examples

# tandem (the launch path) is fully static; tandem-cli links libvirt's shared library, so it gets
# only the Swift runtime statically. Every function gets its own section (all three share the
# modules, so all three are compiled alike), and lld lays tandem's out in the order its launch
# paths first run them (scripts/tandem.order, written by scripts/link_order.py: `make link-order`):
# resident text is 64 KiB for each window a process touches (the kernel's fault-around), and a
# tiny VM's VMM then touches 30 windows of the binary instead of 63.
SECTIONS     := -Xswiftc -Xfrontend -Xswiftc -function-sections
LAUNCH_ORDER := -Xswiftc -use-ld=lld -Xlinker --symbol-ordering-file=$(CURDIR)/scripts/tandem.order \
                -Xlinker --no-warn-symbol-ordering -Xlinker -Map=$(CURDIR)/.build/tandem.map
# lld comes with Swift's Linux toolchains (ld.lld beside swift); without it tandem links unordered.
ifeq ($(shell command -v ld.lld),)
LAUNCH_ORDER :=
endif
BUILD_TANDEM := $(SWIFT) build -c release --disable-local-rpath --product tandem -Xswiftc -static-executable $(SECTIONS) $(LAUNCH_ORDER)
build: deps-core
	$(BUILD_TANDEM)
	$(SWIFT) build -c release --disable-local-rpath --product tandem-cli --static-swift-stdlib $(SECTIONS)
	$(SWIFT) build -c release --disable-local-rpath --product tandem-runtime -Xswiftc -static-executable $(SECTIONS)

# Rewrites scripts/tandem.order from traces of the launch paths (valgrind: apt-get install valgrind)
# and links tandem again with it (SwiftPM does not see the order file change, so the binary goes first).
link-order: build
	python3 scripts/link_order.py
	rm -f $(RELEASE_BIN)
	$(BUILD_TANDEM)

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
	@echo "== tandem ctr run --workload probe: the same image as a container, Tandem's own runtime"
	@$(RELEASE_BIN) ctr run --workload probe
	@echo
	@echo "== tandem-runtime: an OCI runtime (runc's command line) on the same container runtime, driven as podman would"
	@scripts/oci-demo.sh $(dir $(RELEASE_BIN))tandem-runtime
	@echo
	@echo "== tandem bench --quick: every backend that runs here, side by side (a few minutes)"
	@$(RELEASE_BIN) bench --quick --out reports/latest; status=$$?; scripts/libvirtd.sh down; exit $$status

lab: deps guests image
	$(RELEASE_BIN) lab nested --workload compute --args 1000000 --cmdline quiet --compare-qemu

# make test and make demo start libvirtd when it is not running and stop it again afterwards
# (scripts/libvirtd.sh down stops only a daemon it started): the machine is left as it was found.
test: deps guests image kernel
	@scripts/libvirtd.sh up
	$(SWIFT) build --build-tests
	@$(SWIFT) test; status=$$?; scripts/libvirtd.sh down; exit $$status

bench: deps guests build image
	@scripts/libvirtd.sh up
	$(RELEASE_BIN) bench --trials 10 --density 1,10 --snapshot --out reports/latest
	python3 scripts/bench_launch.py --runs 50 --density 1,10,100
	python3 scripts/bench_runtime.py --runs 50
	python3 scripts/bench_runtime.py --runs 30 --gap 150
	python3 scripts/bench_cgroup_join.py --runs 30
	python3 scripts/signal_leftovers.py --runs 30
	scripts/debian-image.sh
	python3 scripts/bench_images.py --runs 10
	scripts/bench_virtio.sh reports/latest

# Parsers of outside data, fuzzed with libFuzzer (SwiftPM executables need a main; a fuzzer's is
# libFuzzer's), seeded from Fuzz/corpus and, for JSON, JSONTestSuite (read only: new inputs go to
# .build/fuzz). json: swiftc on the parser's own sources. config: the OCI config reader, linked
# against the Containers module built with coverage (-sanitize=fuzzer) in its own build directory;
# layer, boot and virtio likewise (layer unpacking; the bzImage parser and Linux loader; the
# virtio-mmio transport, virtqueue walker, virtio-blk and virtio-net).
FUZZ_SECONDS ?= 60
SWIFTC       ?= swiftc
FUZZ_SPM     := .build/fuzz/spm/release
fuzz: deps-core
	@mkdir -p .build/fuzz/corpus-json .build/fuzz/corpus-config
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/JSONFuzz.swift Sources/HostOS/JSON.swift Sources/HostOS/JSONParser.swift -o .build/fuzz/json
	cp Fuzz/corpus/json/* .build/fuzz/corpus-json/
	SWIFT_BACKTRACE=enable=no .build/fuzz/json -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -artifact_prefix=.build/fuzz/json- .build/fuzz/corpus-json Tests/HostOSTests/JSONTestSuite/test_parsing
	$(SWIFT) build -c release --build-path .build/fuzz/spm --target Containers -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/ConfigFuzz.swift -I $(FUZZ_SPM)/Modules \
	    -Xcc -fmodule-map-file=$(FUZZ_SPM)/CLinux.build/module.modulemap -Xcc -fmodule-map-file=$(FUZZ_SPM)/CSeccomp.build/module.modulemap \
	    -Xcc -ISources/CLinux/include -Xcc -ISources/CSeccomp/include \
	    $(FUZZ_SPM)/HostOS.build/*.o $(FUZZ_SPM)/Cgroups.build/*.o $(FUZZ_SPM)/Containers.build/*.o \
	    $(FUZZ_SPM)/CLinux.build/*.o $(FUZZ_SPM)/CSeccomp.build/*.o -lseccomp -o .build/fuzz/config
	cp Fuzz/corpus/config/* .build/fuzz/corpus-config/
	SWIFT_BACKTRACE=enable=no .build/fuzz/config -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 -artifact_prefix=.build/fuzz/config- .build/fuzz/corpus-config
	$(SWIFT) build -c release --build-path .build/fuzz/spm --target ImageImport -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/LayerFuzz.swift -I $(FUZZ_SPM)/Modules \
	    -Xcc -fmodule-map-file=$(FUZZ_SPM)/CLinux.build/module.modulemap -Xcc -fmodule-map-file=$(FUZZ_SPM)/CArchive.build/module.modulemap \
	    -Xcc -ISources/CLinux/include -Xcc -ISources/CArchive/include \
	    $(FUZZ_SPM)/HostOS.build/*.o $(FUZZ_SPM)/Images.build/*.o $(FUZZ_SPM)/ImageImport.build/*.o \
	    $(FUZZ_SPM)/CLinux.build/*.o $(FUZZ_SPM)/CArchive.build/*.o -lcrypto -lz -lzstd -o .build/fuzz/layer
	mkdir -p .build/fuzz/corpus-layer && cp Fuzz/corpus/layer/* .build/fuzz/corpus-layer/
	SWIFT_BACKTRACE=enable=no .build/fuzz/layer -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=10 -artifact_prefix=.build/fuzz/layer- .build/fuzz/corpus-layer; \
	    status=$$?; rm -rf /tmp/tandem-fuzz-layer-*; exit $$status
	$(SWIFT) build -c release --build-path .build/fuzz/spm --target BootLoader -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/BootFuzz.swift -I $(FUZZ_SPM)/Modules \
	    -Xcc -fmodule-map-file=$(FUZZ_SPM)/CLinux.build/module.modulemap -Xcc -ISources/CLinux/include \
	    $(FUZZ_SPM)/HostOS.build/*.o $(FUZZ_SPM)/GuestMemory.build/*.o $(FUZZ_SPM)/BootLoader.build/*.o \
	    $(FUZZ_SPM)/CLinux.build/*.o -o .build/fuzz/boot
	mkdir -p .build/fuzz/corpus-boot && cp Fuzz/corpus/boot/* .build/fuzz/corpus-boot/
	SWIFT_BACKTRACE=enable=no .build/fuzz/boot -max_total_time=$(FUZZ_SECONDS) -max_len=65536 -rss_limit_mb=4096 -timeout=10 -artifact_prefix=.build/fuzz/boot- .build/fuzz/corpus-boot
	$(SWIFT) build -c release --build-path .build/fuzz/spm --target Virtio -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/VirtioFuzz.swift -I $(FUZZ_SPM)/Modules \
	    -Xcc -fmodule-map-file=$(FUZZ_SPM)/CLinux.build/module.modulemap -Xcc -fmodule-map-file=$(FUZZ_SPM)/GuestABI.build/module.modulemap \
	    -Xcc -ISources/CLinux/include -Xcc -ISources/GuestABI/include \
	    $(FUZZ_SPM)/HostOS.build/*.o $(FUZZ_SPM)/GuestMemory.build/*.o $(FUZZ_SPM)/Devices.build/*.o $(FUZZ_SPM)/Virtio.build/*.o \
	    $(FUZZ_SPM)/CLinux.build/*.o -o .build/fuzz/virtio
	mkdir -p .build/fuzz/corpus-virtio && cp Fuzz/corpus/virtio/* .build/fuzz/corpus-virtio/
	SWIFT_BACKTRACE=enable=no .build/fuzz/virtio -max_total_time=$(FUZZ_SECONDS) -max_len=40000 -timeout=10 -artifact_prefix=.build/fuzz/virtio- .build/fuzz/corpus-virtio; \
	    status=$$?; rm -f /tmp/tandem-fuzz-virtio-*.img /tmp/tandem-fuzz-virtio-*.sock*; exit $$status
	$(SWIFTC) -O -sanitize=fuzzer -parse-as-library Fuzz/SnapshotFuzz.swift Sources/MicroVM/SnapshotFile.swift -o .build/fuzz/snapshot
	mkdir -p .build/fuzz/corpus-snapshot && cp Fuzz/corpus/snapshot/* .build/fuzz/corpus-snapshot/
	SWIFT_BACKTRACE=enable=no .build/fuzz/snapshot -max_total_time=$(FUZZ_SECONDS) -max_len=16384 -timeout=10 -artifact_prefix=.build/fuzz/snapshot- .build/fuzz/corpus-snapshot
	# The guest image's http server reads what any client sends: its request reader under ASan.
	clang -O1 -g -fsanitize=fuzzer,address -fuse-ld=lld Fuzz/HTTPFuzz.c -o .build/fuzz/http
	mkdir -p .build/fuzz/corpus-http && cp Fuzz/corpus/http/* .build/fuzz/corpus-http/
	.build/fuzz/http -max_total_time=$(FUZZ_SECONDS) -max_len=20000 -timeout=10 -artifact_prefix=.build/fuzz/http- .build/fuzz/corpus-http

clean:
	rm -rf .build guest-images/build examples/build
