#!/usr/bin/env python3
"""Signals at every step: what a container start, run or delete leaves behind when interrupted.

For tandem-runtime (create, run, delete) and tandem ctr (run), N times each for SIGINT, SIGTERM and
SIGKILL: start the command, send the signal after a random delay (0 to 40 ms, which lands in every
phase: argument parsing, cgroup creation, clone, mounts, hooks, exec, teardown), wait for it, then do
what a user would (tandem-runtime: `delete --force ID`; tandem ctr: the next `tandem ctr run`,
which sweeps what a killed one left) and count what is left of that container: its state directory,
cgroup directories named after it in any hierarchy, mounts naming it, and its processes; for
`tandem ctr run --net bridge -p` also its network: veth host ends, address leases, published-port
elements, and the bridge and its nftables table once nothing uses them. Then `--net-runs` (100)
uninterrupted `ctr run --net bridge -p` in a row, counted the same way.
Every count must be 0. Prints a table and exits 1 if any is not.

Usage: scripts/signal_leftovers.py [--runs 30] [--net-runs 100] [--json FILE]
"""
import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, ".build/release")
ROOTFS = os.path.join(ROOT, "guest-images/build/image/rootfs")


def cgroup_dirs(name):
    found = []
    for hierarchy in os.listdir("/sys/fs/cgroup"):
        base = os.path.join("/sys/fs/cgroup", hierarchy)
        if not os.path.isdir(base):
            continue
        for directory, subdirectories, _ in os.walk(base):
            if directory.count("/") > base.count("/") + 3:
                subdirectories[:] = []
                continue
            if os.path.basename(directory) == name:
                found.append(directory)
    return found


def processes_with(marker):
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def mounts_with(marker):
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if marker in line]


def leftovers(name, state_dir):
    left = {"state": os.path.exists(state_dir), "cgroups": len(cgroup_dirs(name)),
            "mounts": len(mounts_with(name)), "processes": len(processes_with(name))}
    return left


def network_leftovers():
    """Veth host ends, leases, published ports, and the bridge and its table (nothing else uses them here)."""
    veths = [name for name in os.listdir("/sys/class/net") if name.startswith("tv")]
    leases = [name for name in os.listdir("/run/tandem-net") if name != "lock"] if os.path.isdir("/run/tandem-net") else []
    table = subprocess.run(["nft", "list", "table", "ip", "tandem"], capture_output=True, text=True)
    elements = table.stdout.count(" : 172.29.0.") if table.returncode == 0 else 0
    return len(veths) + len(leases) + elements + (1 if table.returncode == 0 else 0) + (1 if os.path.exists("/sys/class/net/tandembr0") else 0)


def interrupted(argv, sig, delay, env=None):
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    time.sleep(delay)
    try:
        process.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "hung"
    return process.returncode


def bundle(directory, args):
    os.makedirs(directory, exist_ok=True)
    subprocess.run([os.path.join(RELEASE, "tandem-runtime"), "spec", "--bundle", directory], check=True, stdout=subprocess.DEVNULL)
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config["root"] = {"path": ROOTFS, "readonly": True}
    with open(path, "w") as f:
        json.dump(config, f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--net-runs", type=int, default=100)
    parser.add_argument("--json", help="write the counts here")
    options = parser.parse_args()
    if os.getuid() != 0:
        sys.exit("signal_leftovers: needs root")
    runtime = os.path.join(RELEASE, "tandem-runtime")
    tandem = os.path.join(RELEASE, "tandem")
    work = tempfile.mkdtemp(prefix="tandem-signals.")
    state_root = tempfile.mkdtemp(prefix="tandem-signals-root.", dir="/run")
    rng = random.Random(20261130)
    b = os.path.join(work, "bundle")
    bundle(b, ["sleep", "1"])
    results = {}
    try:
        for step in ["create", "run", "delete", "ctr run", "ctr run -p"]:
            for sig in [signal.SIGINT, signal.SIGTERM, signal.SIGKILL]:
                totals = {"state": 0, "cgroups": 0, "mounts": 0, "processes": 0, "network": 0, "hung": 0}
                for run in range(options.runs):
                    name = f"sig{os.getpid()}-{step.replace(' ', '')}-{sig.name}-{run}"
                    delay = rng.uniform(0, 0.04)
                    if step.startswith("ctr run"):
                        ctr_root = os.path.join(work, "ctr-state")
                        net = ["--net", "bridge", "-p", "18290:80"] if step == "ctr run -p" else []
                        status = interrupted([tandem, "ctr", "run", "--state-root", ctr_root, "--name", name] + net + ["--", "/bin/sleep", "1"], sig, delay)
                        # What a user does next: another run, which sweeps what a killed one left.
                        subprocess.run([tandem, "ctr", "run", "--state-root", ctr_root, "--", "/bin/true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(1.2)  # a container that outlived its tandem ends its sleep
                        subprocess.run([tandem, "ctr", "rm", "--state-root", ctr_root, "-f", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        # The store: one directory per container (dot names are the store's own).
                        states = os.listdir(ctr_root) if os.path.isdir(ctr_root) else []
                        left = {"state": len([s for s in states if not s.startswith(".")]) > 0,
                                "cgroups": sum(1 for d in cgroup_dirs("tandem") for s in os.listdir(d) if os.path.isdir(os.path.join(d, s))),
                                "mounts": len(mounts_with(ctr_root)), "processes": len(processes_with(name)),
                                "network": network_leftovers() if net else 0}
                    else:
                        base = [runtime, "--root", state_root]
                        if step == "delete":
                            subprocess.run(base + ["run", "--detach", "--bundle", b, name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                            status = interrupted(base + ["delete", "--force", name], sig, delay)
                        elif step == "create":
                            status = interrupted(base + ["create", "--bundle", b, name], sig, delay)
                        else:
                            status = interrupted(base + ["run", "--bundle", b, name], sig, delay)
                        subprocess.run(base + ["delete", "--force", name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(0.05)
                        left = leftovers(name, os.path.join(state_root, name))
                    if any(left.values()):
                        detail = cgroup_dirs(name)[:2] if step != "ctr run" else []
                        print(f"  left after {step} {sig.name} at {delay * 1000:.1f} ms (status {status}): {left} {detail}", flush=True)
                    if status == "hung":
                        totals["hung"] += 1
                    for key in ["state", "cgroups", "mounts", "processes", "network"]:
                        totals[key] += 1 if left.get(key) else 0
                results[f"{step} / {sig.name}"] = totals
                print(f"{step:10} {sig.name:8} runs {options.runs}: " + ", ".join(f"{k} left {v}" for k, v in totals.items()), flush=True)
        # Uninterrupted: N bridge runs with a published port in a row, then the count.
        ctr_root = os.path.join(work, "ctr-state")
        failed = 0
        for run in range(options.net_runs):
            done = subprocess.run([tandem, "ctr", "run", "--state-root", ctr_root, "--net", "bridge", "-p", "18291:80", "--", "/bin/true"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            failed += 1 if done.returncode != 0 else 0
        time.sleep(1.2)  # veths go with their namespaces, in the background
        results[f"ctr run -p, {options.net_runs} in a row"] = {"failed": failed, "network": network_leftovers()}
        print(f"ctr run -p {options.net_runs} in a row: failed {failed}, network left {network_leftovers()}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(state_root, ignore_errors=True)
    if options.json:
        with open(options.json, "w") as f:
            json.dump({"runs": options.runs, "results": results}, f, indent=2)
    bad = {k: v for k, v in results.items() if any(v.values())}
    print("all 0" if not bad else f"LEFT BEHIND: {bad}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
