#!/usr/bin/env python3
"""The bare kernel operation under a container start: moving a new process into its cgroups.

Two ways, each timed around the write(2)s alone, in one fresh cgroup per controller hierarchy:
  procs  the parent writes the child's pid to each cgroup.procs (runc, crun, and Tandem before
         2026-11-30): the kernel takes the global cgroup_threadgroup_rwsem for writing, whose
         percpu fast path must first be switched off by an RCU grace period (rcu_sync_enter);
  tasks  the single-threaded child writes "0" to each tasks file, which its parent opened (Tandem
         now): only the writing thread moves, and the kernel skips that lock (cgroup v1 only; on
         v2 a thread may not leave its process's domain, and Tandem writes cgroup.procs there).
Each way runs after an idle spell (--gap ms: what a single container start pays) and back to back
(the grace period is shared by moves a few ms apart, as in a tight benchmark loop).

usage: scripts/bench_cgroup_join.py [--runs 30] [--gap 150] [--json FILE]   (root; cgroup v1 controllers)
"""
import argparse
import json
import os
import statistics
import sys
import time

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer", "devices")


def hierarchies():
    """One mount per hierarchy (co-mounted controllers once), v1 only."""
    seen, result = set(), []
    for controller in CONTROLLERS:
        path = f"/sys/fs/cgroup/{controller}"
        if not os.path.exists(f"{path}/tasks"):
            continue
        key = os.stat(path).st_ino, os.stat(path).st_dev
        if key not in seen:
            seen.add(key)
            result.append(path)
    return result


def one_move(mounts, way, name):
    directories = [f"{m}/{name}" for m in mounts]
    for d in directories:
        os.mkdir(d)
    try:
        report_r, report_w = os.pipe()
        go_r, go_w = os.pipe()
        fds = [os.open(f"{d}/tasks", os.O_WRONLY) for d in directories] if way == "tasks" else []
        pid = os.fork()
        if pid == 0:
            os.read(go_r, 1)
            start = time.monotonic_ns()
            for fd in fds:
                os.write(fd, b"0")
            os.write(report_w, str(time.monotonic_ns() - start).encode())
            os.read(go_r, 1)  # stays until measured and checked
            os._exit(0)
        for fd in fds:
            os.close(fd)
        elapsed = None
        if way == "procs":
            start = time.monotonic_ns()
            for d in directories:
                with open(f"{d}/cgroup.procs", "w") as f:
                    f.write(str(pid))
            elapsed = time.monotonic_ns() - start
            os.write(go_w, b"1")
        else:
            os.write(go_w, b"1")
            elapsed = int(os.read(report_r, 64))
        for d in directories:
            with open(f"{d}/cgroup.procs") as f:
                if str(pid) not in f.read().split():
                    sys.exit(f"bench_cgroup_join: {way}: pid {pid} is not in {d}")
        os.write(go_w, b"1")
        os.waitpid(pid, 0)
        for fd in (report_r, report_w, go_r, go_w):
            os.close(fd)
        return elapsed / 1e6
    finally:
        for d in directories:
            os.rmdir(d)


def summary(values):
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
    return {"median": statistics.median(ordered), "p5": pick(0.05), "p95": pick(0.95), "n": len(ordered)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--gap", type=float, default=150, help="idle milliseconds before each idle-spell move")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_cgroup_join: needs root")
    mounts = hierarchies()
    if not mounts:
        sys.exit("bench_cgroup_join: no cgroup v1 controller hierarchies here (a pure v2 host: the tasks way does not exist)")
    results = {}
    name = f"tandem-join-bench-{os.getpid()}"
    for spacing, gap in (("after idle", args.gap), ("back to back", 0)):
        for way in ("procs", "tasks"):
            times = []
            for _ in range(args.runs):
                time.sleep(gap / 1000)
                times.append(one_move(mounts, way, name))
            results[f"{way}, {spacing}"] = summary(times)
    print(f"moving a new process into {len(mounts)} v1 cgroup hierarchies, {args.runs} runs each (ms: median [p5-p95]); "
          f"idle spells {args.gap:g} ms; kernel {os.uname().release}")
    for key, s in results.items():
        print(f"  {key:24} {s['median']:7.3f} [{s['p5']:.3f}-{s['p95']:.3f}]")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "gap_ms": args.gap, "hierarchies": mounts, "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
