#!/usr/bin/env bash
# The nested lab: hardware-style KVM on a host without VT-x/AMD-V (see ../shared/PLATFORM.md).
# Boots an L1 Linux under QEMU TCG with an emulated EPYC (which has SVM), loads kvm-amd in it, and
# runs `tandem vm run` there against the same cloud kernel as L2 with Tandem's guest image.
# Usage: scripts/lab-nested.sh [tandem vm run arguments...]   (default: --workload hello)
# Interim: `tandem lab nested` replaces this script (issue: Linux microVM).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kernel=${TANDEM_LAB_KERNEL:-$(ls /boot/vmlinuz-*-cloud-amd64 2>/dev/null | sort -V | tail -1)}
[ -n "$kernel" ] || { echo "lab: no /boot/vmlinuz-*-cloud-amd64 (apt-get install linux-image-cloud-amd64)" >&2; exit 2; }
release=${kernel#/boot/vmlinuz-}
modules=/lib/modules/$release/kernel
command -v qemu-system-x86_64 >/dev/null || { echo "lab: qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 2; }
tandem=$root/.build/release/tandem
image=$root/guest-images/build/image/initramfs.cpio
[ -x "$tandem" ] && [ -f "$image" ] || { echo "lab: run make build image first" >&2; exit 2; }
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(--workload hello)

work=$(mktemp -d /tmp/tandem-lab.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
(cd "$work/root" && cpio -id --quiet < "$image")
mkdir -p "$work/root/lab"
cp "$modules/virt/lib/irqbypass.ko" "$modules/arch/x86/kvm/kvm.ko" "$modules/arch/x86/kvm/kvm-amd.ko" "$work/root/lab/"
cp "$tandem" "$kernel" "$work/root/lab/"
cp "$image" "$work/root/lab/l2.cpio"
printf '%q ' "${args[@]}" > "$work/root/lab/args"
rm "$work/root/init"
cat > "$work/root/init" <<INIT
#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
insmod /lab/irqbypass.ko && insmod /lab/kvm.ko && insmod /lab/kvm-amd.ko nested=1 npt=1
eval "/lab/tandem vm run --kernel /lab/$(basename "$kernel") --initrd /lab/l2.cpio --timeout 120 --json \$(cat /lab/args)" > /lab/result.json
echo "LAB-STATUS \$?"
echo "LAB-JSON \$(cat /lab/result.json)"
poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc --quiet) > "$work/l1.cpio"
khz=$(awk -F: '/cpu MHz/ {printf "%d", $2 * 1000; exit}' /proc/cpuinfo)
timeout 600 qemu-system-x86_64 -M microvm -accel tcg -cpu EPYC -smp ${TANDEM_LAB_SMP:-1} -m 2G -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/l1.cpio" \
  -append "console=ttyS0 panic=-1 quiet tsc_early_khz=$khz" 2>&1 | grep -v "TCG doesn't support"
