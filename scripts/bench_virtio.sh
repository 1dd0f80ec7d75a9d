#!/bin/sh
# Tandem's virtio devices against QEMU microvm's (issue 16's figures), in the nested lab: the same
# L1, kernel and guest image, 5 boots per VMM, interleaved. Writes each lab's JSON report
# (schema tandem.lab/1) to OUT (default reports/latest) and prints the medians and ratios.
#   blk:  blkio on a 64 MiB data drive — O_DIRECT sequential write+fsync and read of 32 MiB,
#         4 KiB random reads at queue depth 1 for 2 s
#   net:  netio over the tap — 32 MiB L2->L1 and 32 MiB L1->L2, checked
#   vsock: vsockio over --vsock — 32 MiB L2->L1 (host port 5001) and 32 MiB L1->L2 echoed back,
#         checked (QEMU: vhost-vsock-device, L1's own AF_VSOCK — the host model QEMU users have)
#   root: boot to ready with the root on virtio-blk (--root-disk)
#   kernel-distro, kernel-microvm: boot to ready with the distro kernel and with Tandem's microVM
#         kernel (make kernel; skipped where it is not built)
# Where /dev/kvm is emulated (kvm_pvm) L1 runs under QEMU TCG: every figure is emulated, good for
# comparing the two VMMs with each other, never as hardware speed.
set -eu
out=${1:-reports/latest}
runs=${RUNS:-5}
tandem=.build/release/tandem
mkdir -p "$out"
disk=$(mktemp /var/tmp/tandem-bench-drive.XXXXXX)
trap 'rm -f "$disk"' EXIT INT TERM
truncate -s 64M "$disk"

lab() {
    name=$1; shift
    echo "== lab nested $*" >&2
    # quiet: kernel messages printed while the workload runs could split its result line.
    "$tandem" lab nested --runs "$runs" --compare-qemu --json --cmdline quiet "$@" > "$out/lab-$name.json"
    python3 - "$out/lab-$name.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
summary = report["summary"]
print(f"{sys.argv[1]}: {report['l2']}")
def line(key, values):
    cells = []
    for vmm in ("tandem", "qemu"):
        stats = values.get(vmm)
        if stats and stats.get("median") is not None:
            cells.append(f"{vmm} {stats['median']:.1f} [{stats['min']:.1f}-{stats['max']:.1f}] n={stats['n']}")
    print(f"  {key}: " + ", ".join(cells))
line("ready_ms", {vmm: summary[vmm]["ready_ms"] for vmm in summary})
if "qemu" not in summary:
    print("  (Tandem only)")
for key in sorted(next(iter(summary.values()))["figures"]):
    line(key, {vmm: summary[vmm]["figures"][key] for vmm in summary})
ratios = dict(report["tandem_over_qemu_figures"], ready=report["tandem_over_qemu_ready"])
if "qemu" in summary:
    print("  tandem/qemu: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(ratios.items()) if v is not None))
PY
}

# The device figures with the distro kernel (its virtio drivers are modules the image carries).
distro=$(ls /boot/vmlinuz-*-cloud-amd64 | sort | tail -1)
lab blk --workload blkio --args serial=tandem-0,32,2 --drive "$disk" --l2-kernel "$distro"
lab net --workload netio --args both,172.30.0.1,5001,32 --net --l2-kernel "$distro"
lab vsock --workload vsockio --args both,5001,32 --vsock --l2-kernel "$distro"
lab root --root-disk --l2-kernel "$distro"
# Boot to ready: the distro kernel against Tandem's microVM kernel (make kernel), where it is built.
lab kernel-distro --workload hello --l2-kernel "$distro"
if [ -f guest-images/build/kernel/vmlinuz-tandem-microvm ]; then
    lab kernel-microvm --workload hello --l2-kernel guest-images/build/kernel/vmlinuz-tandem-microvm
fi
