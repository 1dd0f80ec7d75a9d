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
[ -f "$tarball" ] || { echo "build-kernel: $tarball is missing: apt-get install linux-source-6.1 (make deps-kernel)" >&2; exit 1; }
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
    case "$line" in *=n) name=${line%%=*}; grep -q "^$name=" .config && echo "$line" ;; *) grep -qx "$line" .config || echo "$line" ;; esac
done)
[ -z "$missing" ] || { echo "build-kernel: the config lost: $missing" >&2; exit 1; }
make -s -j"$(nproc)" bzImage KBUILD_BUILD_TIMESTAMP="1970-01-01" KBUILD_BUILD_USER=tandem KBUILD_BUILD_HOST=tandem
cp arch/x86/boot/bzImage "$image.partial"
cp .config "$out/config-tandem-microvm"
mv "$image.partial" "$image"
echo "build-kernel: $image ($(stat -c %s "$image") bytes), $(make -s kernelrelease)"
