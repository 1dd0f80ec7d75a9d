#!/usr/bin/env bash
# Builds a real distribution image, offline from anything but Debian's own mirror: Debian 12
# (bookworm, variant minbase) with mmdebstrap, packed as an OCI image with umoci (one gzip layer),
# plus an "app" image on top of it (the same base layer and one of its own), and the same images as
# an oci-archive (skopeo). Usage: scripts/debian-image.sh [OUT_DIR]   (default /var/tmp/tandem-debian)
#   OUT/rootfs.tar        mmdebstrap's tarball (kept: rebuilding needs the network)
#   OUT/layout            OCI layout: tags 12 (Debian) and app (Debian + /app)
#   OUT/debian-12.oci.tar oci-archive of tag 12; OUT/app.oci.tar of tag app
set -euo pipefail
out=${1:-/var/tmp/tandem-debian}
mkdir -p "$out"
cd "$out"
for tool in mmdebstrap umoci skopeo; do
  command -v "$tool" >/dev/null || { echo "debian-image: $tool is missing (scripts/install-deps.sh bench)" >&2; exit 1; }
done
if [ ! -s rootfs.tar ]; then
  mode=root; [ "$(id -u)" = 0 ] || mode=unshare
  mmdebstrap --quiet --variant=minbase --format=tar --mode=$mode bookworm rootfs.tar.partial
  mv rootfs.tar.partial rootfs.tar
fi
rm -rf layout app-layer debian-12.oci.tar app.oci.tar
umoci init --layout layout
umoci new --image layout:12
umoci raw add-layer --image layout:12 rootfs.tar
umoci config --image layout:12 --config.cmd /bin/bash --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --author "tandem scripts/debian-image.sh" --os linux --architecture amd64
# The app: a script and 4 MiB of data on top of the same base layer.
mkdir -p app-layer/app
printf '#!/bin/sh\necho "app ready on $(. /etc/os-release; echo $PRETTY_NAME)"\n' > app-layer/app/run
chmod 755 app-layer/app/run
head -c 4194304 /dev/urandom > app-layer/app/data
tar --numeric-owner --owner=0 --group=0 -C app-layer -cf app.tar app
umoci raw add-layer --image layout:12 --tag app app.tar
umoci config --image layout:app --config.entrypoint /app/run --clear=config.cmd
rm -rf app-layer app.tar
skopeo --insecure-policy copy -q oci:layout:12 oci-archive:debian-12.oci.tar:debian:12
skopeo --insecure-policy copy -q oci:layout:app oci-archive:app.oci.tar:debian-app:1
ls -l "$out"/*.tar
