#!/usr/bin/env python3
"""OCI runtime lifecycle benchmark: `create` + `start` + `delete` of a `true` container, the way
podman and containerd drive a runtime, for tandem-runtime, crun and runc.

Every runtime gets the same bundle: a busybox rootfs and `runc spec`'s config.json (terminal off,
args ["true"]). One trial is: create ID; start ID; delete --force ID (--force because `true` may
not have exited yet when start returns; each runtime then kills what is left). Each phase is timed
around posix_spawn + waitpid with CLOCK_MONOTONIC. Trials are interleaved: every round runs each
runtime once, in a new random order (fixed seed). Everything runs in a private mount namespace
with the empty cgroup2 mount hidden: crun 1.8 refuses this host's v1/v2 hybrid layout otherwise;
the others are unaffected. Results: median and p5-p95 per phase and in total, and the ratios.

usage: scripts/bench_runtime.py [--runs 50] [--runtime PATH] [--json FILE]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_launch import hide_cgroup2_for_crun  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(argv):
    """Runs argv with stdio on /dev/null; returns (milliseconds, exit status)."""
    actions = [(os.POSIX_SPAWN_OPEN, fd, "/dev/null", os.O_RDWR, 0) for fd in (0, 1, 2)]
    start = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    return (time.monotonic_ns() - start) / 1e6, os.waitstatus_to_exitcode(status)


def make_bundle(directory):
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for sub in ("proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, sub))
    shutil.copy(shutil.which("busybox"), os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "true"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    subprocess.run([shutil.which("runc"), "spec", "--bundle", directory], check=True)
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["true"]
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


def percentile(values, p):
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lower = int(k)
    upper = min(lower + 1, len(values) - 1)
    return values[lower] + (values[upper] - values[lower]) * (k - lower)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--runtime", default=os.path.join(ROOT, ".build/release/tandem-runtime"))
    parser.add_argument("--json", help="write the raw timings here")
    parser.add_argument("--gap", type=float, default=0, help="idle milliseconds before each create: a single "
                        "run after an idle spell (on cgroup v1 the first process move after one, by cgroup.procs, "
                        "waits for an RCU grace period; back-to-back runs share one)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_runtime: needs root")
    runtimes = {"tandem-runtime": args.runtime}
    for name in ("crun", "runc"):
        path = shutil.which(name)
        if path:
            runtimes[name] = path
        else:
            print(f"bench_runtime: {name} is not installed; skipped", file=sys.stderr)
    notes = []
    if hide_cgroup2_for_crun():
        notes.append("all runtimes ran in a private mount namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 needs it on this hybrid layout)")

    work = tempfile.mkdtemp(prefix="tandem-bench-runtime-")
    bundle = os.path.join(work, "bundle")
    make_bundle(bundle)
    roots = {name: os.path.join(work, "state-" + name) for name in runtimes}
    phases = ("create", "start", "delete")
    times = {name: {phase: [] for phase in phases + ("total",)} for name in runtimes}
    failures = {name: 0 for name in runtimes}
    order = list(runtimes)
    rng = random.Random(7)
    try:
        for round_number in range(args.runs + 1):  # round 0 warms caches and is not counted
            rng.shuffle(order)
            for name in order:
                binary, root = runtimes[name], roots[name]
                cid = f"bench-{round_number}"
                total = 0.0
                record = {}
                ok = True
                if args.gap:
                    time.sleep(args.gap / 1000)
                for phase, argv in (("create", [binary, "--root", root, "create", "--bundle", bundle, cid]),
                                    ("start", [binary, "--root", root, "start", cid]),
                                    ("delete", [binary, "--root", root, "delete", "--force", cid])):
                    ms, status = timed(argv)
                    if status != 0:
                        ok = False
                        subprocess.run([binary, "--root", root, "delete", "--force", cid], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        break
                    record[phase] = ms
                    total += ms
                if not ok:
                    failures[name] += 1
                    continue
                if round_number == 0:
                    continue
                for phase in phases:
                    times[name][phase].append(record[phase])
                times[name]["total"].append(total)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    gap = f", each after {args.gap:g} ms idle" if args.gap else ""
    print(f"create + start + delete --force of a `true` container, {args.runs} runs each, interleaved{gap} (ms: median [p5-p95])")
    for note in notes:
        print("note:", note)
    summary = {}
    for name in runtimes:
        row = {}
        for phase in phases + ("total",):
            values = times[name][phase]
            if values:
                row[phase] = {"median": statistics.median(values), "p5": percentile(values, 5), "p95": percentile(values, 95)}
        summary[name] = row
        cells = "  ".join(f"{phase} {row[phase]['median']:.2f} [{row[phase]['p5']:.2f}-{row[phase]['p95']:.2f}]" for phase in row)
        print(f"  {name:15} {cells}" + (f"  ({failures[name]} failed)" if failures[name] else ""))
    base = summary.get("tandem-runtime", {}).get("total", {}).get("median")
    for peer in ("crun", "runc"):
        other = summary.get(peer, {}).get("total", {}).get("median")
        if base and other:
            print(f"  tandem-runtime / {peer}: {base / other:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "gap_ms": args.gap, "notes": notes, "summary": summary, "raw": times, "failures": failures}, f, indent=1)
    if any(failures.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
