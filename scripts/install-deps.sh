#!/usr/bin/env bash
# Installs what Tandem needs on Debian 12 / Ubuntu 24.04, and only what is missing.
# Usage: scripts/install-deps.sh [core|bench|kernel|all]   (default: all)
#   core   compilers and tools to build Tandem and its guests
#   bench  the peers Tandem is measured against (crun, runc), hyperfine, and on Debian the cloud
#          kernel the Linux guests boot (linux-image-cloud-amd64, /boot/vmlinuz-*-cloud-amd64)
#   kernel what `make kernel` builds the microVM guest kernel from (Debian's linux-source-6.1)
#          and with (flex, bison, bc, libelf-dev for objtool)
set -euo pipefail

profile=${1:-all}
# acpica-tools: the tests disassemble the microVM's ACPI tables with Intel's iasl.
# libvirt-dev + pkg-config: tandem-cli links libvirt's C API; the daemon runs the libvirt guests.
# qemu-utils: qemu-img makes the qcow2 overlay each libvirt run of a user's image writes to.
# libseccomp-dev: tandem-runtime compiles OCI seccomp profiles with it (linked statically).
# runc + procps: tandem-runtime's differential tests run the same bundles through runc; its ps uses ps.
# podman: the tests drive tandem-runtime through it, and the bench kills its conmon (the
#         manager-kill measurement). jq: the README's examples pipe a report through it (a test runs them).
# strace: a test checks which system call moves a container's process into its cgroups.
# uidmap: rootless tandem-runtime maps a user's /etc/subuid ranges with newuidmap/newgidmap (tested).
# libssl-dev + zlib1g-dev + libzstd-dev: the image store hashes blobs with OpenSSL's SHA-256 and
#   decompresses layers and archives with zlib and libzstd; zstd: the tests make zstd layers with it.
# skopeo: tandem image pull, and the tests copy their images into oci-archive and docker-archive with it.
# iproute2: the --net bridge tests squat on the bridge's name and make a namespace with `ip` (Tandem itself does not use it).
# nftables: --net bridge's outbound NAT and -p's published ports are nftables rules made with nft.
core=(gcc make binutils libc6-dev python3 busybox-static cpio util-linux acpica-tools pkg-config libvirt-dev
      libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils e2fsprogs libseccomp-dev runc procps podman jq strace uidmap
      libssl-dev zlib1g-dev libzstd-dev zstd skopeo iproute2 nftables)
# containerd: a test runs tandem-runtime as containerd's runc binary (ctr run --runc-binary). A
# host with Docker's containerd.io package has a containerd already, and Debian's would replace it
# (and with it Docker): the one installed is kept.
command -v containerd >/dev/null 2>&1 || core+=(containerd)
# umoci: the image import is measured against skopeo + umoci unpack; mmdebstrap builds the Debian image.
# wrk, redis-tools: the load generators of `tandem bench --workloads http,redis` (tests run them);
#   redis-tools also has the redis-server `tandem image build --with-redis` carries (no service).
bench=(crun runc hyperfine qemu-system-x86 umoci mmdebstrap wrk redis-tools)
# Ubuntu packages its kernels under other names; the Debian cloud kernel is what Tandem is verified
# with, and Debian's standard kernel (its drivers are modules: the first stages load them from its
# modules.dep) is tested in the libvirt disk guest and the nested lab.
if grep -q '^ID=debian' /etc/os-release 2>/dev/null; then bench+=(linux-image-cloud-amd64 linux-image-amd64); fi
# The microVM kernel is built from Debian 12's kernel source (its config fragment is verified with
# it); elsewhere `make kernel` says so and the distro kernels are used.
kernel=(flex bison bc libelf-dev libssl-dev)
if grep -q '^ID=debian' /etc/os-release 2>/dev/null; then kernel+=(linux-source-6.1); fi
case "$profile" in
  core) wanted=("${core[@]}") ;;
  kernel) wanted=("${kernel[@]}") ;;
  bench) wanted=("${bench[@]}") ;;
  all) wanted=("${core[@]}" "${bench[@]}" "${kernel[@]}") ;;
  *) echo "install-deps: unknown profile '$profile' (core, bench, kernel or all)" >&2; exit 2 ;;
esac

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v swift >/dev/null; then
  cat >&2 <<'TXT'
install-deps: Swift 6 is not installed. Debian and Ubuntu do not package a current Swift:
  install it from https://www.swift.org/install/linux/ (swiftly), then run make again.
TXT
  exit 1
fi
