#!/usr/bin/env python3
"""Users' images, measured: import of a real Debian image and start -> ready of a program in it.

Needs the images scripts/debian-image.sh builds (Debian 12 minbase by mmdebstrap, and an app image
sharing its base layer). In one run, interleaved:
  import    `tandem image import` of the oci-archive into a fresh store, against `skopeo copy`
            (oci-archive -> OCI layout) + `umoci unpack` (layout -> runtime bundle), the same
            archive: wall time, and bytes on disk (allocated, du) of the store / layout + bundle
  sharing   the Debian image and the app image in one store: bytes on disk against the sum of
            the two images' sizes (what they would take without sharing)
  start     `/bin/echo TANDEM-READY` in the Debian image: tandem run --as container, crun and
            runc (tandem's bundle: config from the image, overlay of its layers), libvirt (the
            image as the guest's ext4 root disk, made on the first run and shared by the rest
            under a qcow2 overlay each; TCG here), and crun and
            runc on the bundle umoci unpacked (its config: no terminal, that command): exec ->
            the marker line and -> exit (lab-time, as bench_launch.py times containers)
Run it a few minutes after anything deleted many files on the same ext4 file system (see main).
Usage: scripts/bench_images.py [--runs 10] [--images /var/tmp/tandem-debian] [--out FILE]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_launch  # noqa: E402  (spawn, hide_cgroup2_for_crun, timed, summarise)

ROOT = bench_launch.ROOT


def disk_bytes(*paths):
    """Allocated bytes (du -s --block-size=1), each inode once across the paths."""
    out = subprocess.run(["du", "-s", "-c", "--block-size=1"] + list(paths), capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[-1].split()[0])


def run(argv):
    """Wall milliseconds of argv, started with no dirty pages pending (sync first, untimed): each
    tool's own writes, not the previous one's writeback, are what is timed."""
    os.sync()
    start = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return (time.monotonic() - start) * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--images", default="/var/tmp/tandem-debian")
    parser.add_argument("--tandem", default=os.path.join(ROOT, ".build/release/tandem"))
    parser.add_argument("--out")
    args = parser.parse_args()
    archive = os.path.join(args.images, "debian-12.oci.tar")
    app = os.path.join(args.images, "app.oci.tar")
    for path in (archive, app, bench_launch.LAB_TIME):
        if not os.path.exists(path):
            sys.exit(f"bench_images: {path} is missing (scripts/debian-image.sh; make guests)")
    hidden = bench_launch.hide_cgroup2_for_crun()
    work = tempfile.mkdtemp(prefix="tandem-bench-images-", dir="/var/tmp")
    os.chmod(work, 0o755)  # QEMU's user reads the image's root disk from the store in it
    results = {"runs": args.runs, "archive": archive, "archive_bytes": os.path.getsize(archive), "import": {}, "start": {}}
    try:
        tandem_ms, umoci_ms, tandem_bytes, umoci_bytes = [], [], [], []
        for index in range(args.runs):
            store = os.path.join(work, f"store-{index}")
            layout, bundle = os.path.join(work, f"layout-{index}"), os.path.join(work, f"bundle-{index}")
            pair = [("tandem", lambda: run([args.tandem, "image", "import", "--quiet", "--store", store, archive])),
                    ("umoci", lambda: run(["skopeo", "--insecure-policy", "copy", "-q", f"oci-archive:{archive}", f"oci:{layout}:12"])
                     + run(["umoci", "unpack", "--image", f"{layout}:12", bundle]))]
            for name, action in (pair if index % 2 == 0 else pair[::-1]):
                (tandem_ms if name == "tandem" else umoci_ms).append(action())
            tandem_bytes.append(disk_bytes(store))
            umoci_bytes.append(disk_bytes(layout, bundle))
            # Nothing is removed until the end: on ext4, inodes freed in the last few minutes make
            # every later inode allocation scan past them ("recently_deleted"), and an import of
            # 8,700 files then takes 7 s instead of 1 (seen here with perf).
        results["import"] = {"tandem_ms": bench_launch.summarise(tandem_ms), "skopeo_umoci_ms": bench_launch.summarise(umoci_ms),
                             "tandem_bytes": tandem_bytes[-1], "skopeo_umoci_bytes": umoci_bytes[-1]}
        store = os.path.join(work, f"store-{args.runs - 1}")
        bundle = os.path.join(work, f"bundle-{args.runs - 1}")
        subprocess.run([args.tandem, "image", "import", "--quiet", "--store", store, app], check=True, stdout=subprocess.DEVNULL)
        df = json.loads(subprocess.run([args.tandem, "image", "df", "--json", "--store", store], check=True, capture_output=True, text=True).stdout)
        results["sharing"] = {"layers_on_disk": df["layersOnDisk"], "without_sharing": df["withoutSharing"],
                              "images": {image["names"][0]: image["size"] for image in df["images"]}}
        # start -> ready: the same program in the Debian image, three ways.
        with open(os.path.join(bundle, "config.json")) as handle:
            config = json.load(handle)
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/echo", "TANDEM-READY"]
        with open(os.path.join(bundle, "config.json"), "w") as handle:
            json.dump(config, handle)
        commands = {
            "tandem run --as container": [args.tandem, "run", "debian:12", "--store", store, "--", "/bin/echo", "TANDEM-READY"],
            "tandem run --as crun": [args.tandem, "run", "debian:12", "--as", "crun", "--store", store, "--", "/bin/echo", "TANDEM-READY"],
            "tandem run --as runc": [args.tandem, "run", "debian:12", "--as", "runc", "--store", store, "--", "/bin/echo", "TANDEM-READY"],
            "crun run (umoci bundle)": [shutil.which("crun"), "run", "--bundle", bundle, "bench-images-crun"],
            "runc run (umoci bundle)": [shutil.which("runc"), "run", "--bundle", bundle, "bench-images-runc"],
        }
        # A libvirt guest (TCG where the host has no hardware virtualisation): its root disk is
        # made from the image on the first run (mke2fs -d of the merged layers) and shared by the
        # later ones, each under a qcow2 overlay of its own: that first run is timed on its own.
        if shutil.which("virsh") and os.path.exists("/run/libvirt/libvirt-sock"):
            commands["tandem run --as libvirt"] = [args.tandem, "run", "debian:12", "--as", "libvirt", "--store", store, "--", "/bin/echo", "TANDEM-READY"]
            status, ready, exit_ms, rss = bench_launch.timed("libvirt_first", commands["tandem run --as libvirt"])
            if status != 0 or ready is None:
                sys.exit(f"bench_images: the first libvirt run failed (status {status})")
            results["libvirt_first_run"] = {"ready_ms": ready, "exit_ms": exit_ms}
        samples = {name: {"ready": [], "exit": [], "rss": []} for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                status, ready, exit_ms, rss = bench_launch.timed(name.replace(" ", "_"), argv)
                if status != 0 or ready is None:
                    sys.exit(f"bench_images: {name} failed (status {status})")
                samples[name]["ready"].append(ready)
                samples[name]["exit"].append(exit_ms)
                samples[name]["rss"].append(rss)
        results["start"] = {name: {key: bench_launch.summarise(values) for key, values in data.items()} for name, data in samples.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    mode = subprocess.run([args.tandem, "host", "--json"], capture_output=True, text=True).stdout
    results["virtualisation"] = json.loads(mode).get("virtualisation", {}).get("mode", "unknown") if mode else "unknown"

    def fmt(summary):
        return f"{summary['median']:.1f} [{summary['p5']:.1f}-{summary['p95']:.1f}]"
    imp = results["import"]
    print(f"{args.runs} runs each; milliseconds: median [p5-p95]; bytes: allocated on disk")
    print(f"archive: {archive} ({results['archive_bytes'] / 1e6:.1f} MB)")
    print(f"import  tandem image import          {fmt(imp['tandem_ms'])} ms   {imp['tandem_bytes'] / 1e6:.1f} MB stored")
    print(f"import  skopeo copy + umoci unpack   {fmt(imp['skopeo_umoci_ms'])} ms   {imp['skopeo_umoci_bytes'] / 1e6:.1f} MB (layout + bundle)")
    share = results["sharing"]
    print(f"sharing {', '.join(f'{k} {v / 1e6:.1f} MB' for k, v in share['images'].items())}: "
          f"{share['layers_on_disk'] / 1e6:.1f} MB on disk, {share['without_sharing'] / 1e6:.1f} MB without sharing")
    for name, data in results["start"].items():
        print(f"start   {name:26} ready {fmt(data['ready'])} ms  exit {fmt(data['exit'])} ms  peak RSS {data['rss']['median']:.2f} MiB")
    if "libvirt_first_run" in results:
        first = results["libvirt_first_run"]
        print(f"start   tandem run --as libvirt, first run (its root disk made): ready {first['ready_ms']:.1f} ms  exit {first['exit_ms']:.1f} ms")
    if hidden:
        print("note: all commands ran in a private mount namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 needs it here)")
    print(f"note: virtualisation mode here is '{results['virtualisation']}': containers run natively; a libvirt guest's figure is "
          + ("QEMU emulating the guest (TCG), not hardware speed" if results["virtualisation"] != "hardware" else "with KVM"))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
