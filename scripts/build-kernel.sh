#!/bin/sh
# `make kernel`: Tandem's microVM guest kernel from Debian's linux-source-6.1, with the config
# fragment guest-images/kernel/tandem-microvm.config merged onto allnoconfig. The result,
# guest-images/build/kernel/vmlinuz-tandem-microvm (a bzImage) and its resolved .config, is
# cached: rebuilt only when the source tarball or the fragment is newer.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tarball=/usr/src/linux-source-6.1.tar.xz
fragment=$here/guest-images/kernel/tandem-microvm.config
out=$here/guest-images/build/kernel
image=$out/vmlinuz-tandem-microvm
work=$here/.build/kernel
if [ ! -f "$tarball" ]; then
    if grep -q '^ID=debian' /etc/os-release 2>/dev/null; then
        echo "build-kernel: $tarball is missing: apt-get install linux-source-6.1 (make deps-kernel)" >&2
        exit 1
    fi
    echo "build-kernel: no microVM kernel here: it is built from Debian 12's linux-source-6.1; Tandem's VMM boots the distro kernel" >&2
    exit 0
fi
if [ -f "$image" ] && [ "$image" -nt "$tarball" ] && [ "$image" -nt "$fragment" ]; then
    echo "build-kernel: $image is up to date"
    exit 0
fi
mkdir -p "$work" "$out"
source=$work/linux-source-6.1
if [ ! -d "$source" ] || [ "$tarball" -nt "$source" ]; then
    rm -rf "$source"
    tar -C "$work" -xf "$tarball"
    touch "$source"
fi
cd "$source"
make -s allnoconfig
./scripts/kconfig/merge_config.sh -m .config "$fragment" > /dev/null
make -s olddefconfig
# Every line of the fragment must have survived (a dependency it lacks drops it silently).
missing=$(grep '^CONFIG_' "$fragment" | while read -r line; do
    case "$line" in *=n) name=${line%%=*}; if grep -q "^$name=" .config; then echo "$line"; fi ;; *) grep -qx "$line" .config || echo "$line" ;; esac
done; true)
[ -z "$missing" ] || { echo "build-kernel: the config lost: $missing" >&2; exit 1; }
make -s -j"$(nproc)" bzImage KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=tandem KBUILD_BUILD_HOST=tandem
cp arch/x86/boot/bzImage "$image.partial"
cp .config "$out/config-tandem-microvm"
mv "$image.partial" "$image"
echo "build-kernel: $image ($(stat -c %s "$image") bytes), $(make -s kernelrelease)"
