#!/usr/bin/env bash
# The OCI runtime the way podman or containerd drives one: a bundle (busybox rootfs + config.json
# from `tandem-runtime spec`), then create, state, start, state, delete.
# Usage: scripts/oci-demo.sh [path/to/tandem-runtime]
set -euo pipefail
runtime=${1:-.build/release/tandem-runtime}
bundle=$(mktemp -d /tmp/tandem-oci-demo.XXXXXX)
root=$(mktemp -d /run/tandem-oci-demo.XXXXXX)
id=demo-$$
trap '"$runtime" --root "$root" delete --force "$id" >/dev/null 2>&1 || true; rm -rf "$bundle" "$root"' EXIT
mkdir -p "$bundle/rootfs/bin" "$bundle/rootfs/proc" "$bundle/rootfs/sys" "$bundle/rootfs/dev" "$bundle/rootfs/tmp"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for applet in sh cat hostname id grep; do ln -s busybox "$bundle/rootfs/bin/$applet"; done
"$runtime" spec --bundle "$bundle"
# No terminal (the demo is not interactive) and a command that shows where it runs.
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c", "echo \"hello from $(hostname): $(id)\"; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 3"]
json.dump(config, open(path, "w"), indent=2)
PY
echo "\$ tandem-runtime create --bundle $bundle $id"
"$runtime" --root "$root" create --bundle "$bundle" "$id"
echo "\$ tandem-runtime state $id   # waiting at its entry point"
"$runtime" --root "$root" state "$id" | grep -E '"(status|pid)"'
echo "\$ tandem-runtime start $id"
"$runtime" --root "$root" start "$id"
sleep 0.2
echo "\$ tandem-runtime state $id   # the monitor kept the exit status"
"$runtime" --root "$root" state "$id" | grep -E '"(status|exitStatus)"'
echo "\$ tandem-runtime delete $id"
"$runtime" --root "$root" delete "$id"
