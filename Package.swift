// swift-tools-version: 6.0
// Tandem: a KVM microVM, a libvirt guest and a container, side by side.
// Targets as docs/architecture.md describes them: dependencies point down,
// devices and boot loaders never see KVM, and the launch path never imports Foundation.
import PackageDescription

let package = Package(
    name: "tandem",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "tandem", targets: ["tandem"]),
        .executable(name: "tandem-cli", targets: ["tandem-cli"]),
        .executable(name: "tandem-runtime", targets: ["tandem-runtime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C: the ioctl request macros of <linux/kvm.h> cannot be imported into Swift.
        .target(name: "CKVM"),
        // C header shared by the guests (tiny guests, tandem-init) and the host devices:
        // the one place where the guest <-> VMM port numbers are defined.
        .target(name: "GuestABI"),
        // C: GNU-only and variadic Linux calls (and, later, the code that runs between clone and exec).
        .target(name: "CLinux"),
        .target(name: "HostOS", dependencies: ["CLinux"]),
        // C: OCI seccomp profiles compiled to BPF with libseccomp, in the runtime (never in the child).
        .target(name: "CSeccomp", linkerSettings: [.linkedLibrary("seccomp")]),
        .target(name: "KVM", dependencies: ["CKVM", "HostOS"]),
        .target(name: "GuestMemory", dependencies: ["HostOS", "CLinux"]),
        .target(name: "BootLoader", dependencies: ["GuestMemory", "HostOS"]),
        .target(name: "Devices", dependencies: ["GuestABI", "HostOS"]),
        // virtio 1.x: split virtqueues, the virtio-mmio transport and device models (blk); they see
        // guest memory and an interrupt line, never KVM, and are tested and fuzzed on their own.
        .target(name: "Virtio", dependencies: ["GuestMemory", "Devices", "HostOS", "CLinux"]),
        .target(name: "MicroVM", dependencies: ["KVM", "GuestMemory", "BootLoader", "Devices", "Virtio", "HostOS", "GuestABI", "CLinux"]),
        .target(name: "HostFacts", dependencies: ["KVM", "HostOS"]),
        .target(name: "GuestImages", dependencies: ["HostOS"]),
        // C: zlib's inflateInit2 is a macro Swift cannot import, and OpenSSL's SHA-256 uses the
        // CPU's SHA extensions (every blob and layer is hashed on import).
        .target(name: "CArchive", linkerSettings: [.linkedLibrary("crypto"), .linkedLibrary("z"), .linkedLibrary("zstd")]),
        // OCI images: the content-addressed store (records, layers, names), read on the launch
        // path by `tandem run IMAGE` (no crypto or zlib there); hands containers a layer list.
        .target(name: "Images", dependencies: ["CLinux", "HostOS"]),
        // Writing to it: import (OCI layout, oci-archive, docker-archive), digests checked,
        // hostile-tar-safe layer unpacking. Only tandem-cli links it.
        .target(name: "ImageImport", dependencies: ["Images", "CArchive", "CLinux", "HostOS"]),
        // cgroups v1 and v2 behind one manager protocol (root injectable: v2 is tested on a fixture too).
        .target(name: "Cgroups", dependencies: ["HostOS", "CLinux"]),
        // The container runtime: spec, rootfs layers, namespaces (through CLinux's clone trampoline), state.
        .target(name: "Containers", dependencies: ["CLinux", "CSeccomp", "Cgroups", "HostOS"]),
        // The OCI runtime (runc's command line): config.json, bundles, create/start/state/kill/delete,
        // hooks, seccomp. Its launch path is lean too (no Foundation, no ArgumentParser).
        .target(name: "OCIRuntime", dependencies: ["Containers", "Cgroups", "HostOS", "CLinux"]),
        // libvirt's C API (pkg-config libvirt). Only tandem-cli links it: the launcher stays static.
        .systemLibrary(name: "CLibvirt", pkgConfig: "libvirt", providers: [.apt(["libvirt-dev"])]),
        .target(name: "Libvirt", dependencies: ["CLibvirt", "HostOS"]),
        // tandem bench: scenarios x backends x trials -> raw results.json (no statistics);
        // tandem report: statistics and the HTML/Markdown/CSV/JSON pages.
        .target(name: "Bench", dependencies: ["HostOS", "CLinux"]),
        .target(name: "Report", dependencies: ["Bench", "HostOS"]),
        // The launch path: what `tandem vm run` needs, and nothing that costs start time (no
        // ArgumentParser, no Foundation). `tandem` is this plus main.swift.
        .target(name: "TandemLaunch", dependencies: ["MicroVM", "Virtio", "BootLoader", "HostFacts", "HostOS", "Containers", "Cgroups", "CLinux", "Images"]),
        // `tandem lab nested`: an emulated L1 with SVM, for hosts without hardware virtualisation.
        .target(name: "NestedLab", dependencies: ["GuestImages", "HostOS", "TandemLaunch", "Bench"]),
        .target(name: "TandemCLI", dependencies: [
            "TandemLaunch", "MicroVM", "HostFacts", "HostOS", "GuestImages", "NestedLab", "Containers", "Cgroups", "Libvirt", "Bench", "Report", "Images", "ImageImport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "tandem", dependencies: ["TandemLaunch"]),
        .executableTarget(name: "tandem-cli", dependencies: ["TandemCLI"]),
        .executableTarget(name: "tandem-runtime", dependencies: ["OCIRuntime"]),

        .testTarget(name: "HostOSTests", dependencies: ["HostOS"], exclude: ["JSONTestSuite"]),
        .testTarget(name: "DevicesTests", dependencies: ["Devices", "GuestABI"]),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "GuestMemory", "Devices", "HostOS"]),
        .testTarget(name: "MicroVMTests", dependencies: ["MicroVM", "GuestMemory", "BootLoader", "KVM", "HostFacts", "Devices", "Virtio"]),
        .testTarget(name: "GuestImagesTests", dependencies: ["GuestImages", "HostOS"]),
        .testTarget(name: "CgroupsTests", dependencies: ["Cgroups", "HostOS"]),
        .testTarget(name: "OCIRuntimeTests", dependencies: ["OCIRuntime", "Containers", "HostOS", "CLinux"]),
        .testTarget(name: "LibvirtTests", dependencies: ["Libvirt"], exclude: ["Golden"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "Bench"], exclude: ["Fixtures"]),
        .testTarget(name: "CLITests", dependencies: ["Bench", "TandemLaunch", "TandemCLI"]),
        .testTarget(name: "ImagesTests", dependencies: ["Images", "ImageImport", "HostOS"]),
        .testTarget(name: "IntegrationTests", dependencies: ["HostFacts", "HostOS", "CLinux"]),
    ]
)
