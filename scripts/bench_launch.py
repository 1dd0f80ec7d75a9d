#!/usr/bin/env python3
"""Launch-cost benchmark: tiny microVM start, and Tandem's container runtime vs. crun and runc.

Runs each command N times, interleaved (A B C A B C ...), and reports median, spread and peak RSS:
  tandem vm run --tiny hello   exec -> ready-port write (the VMM's CLOCK_MONOTONIC timestamp) and -> exit
  tandem --version             the launcher's own start cost
  /bin/true                    the floor: exec of a trivial static-ish program
  tandem ctr run / crun run / runc run
                               the guest image's rootfs (busybox + tandem-init), `true` (exec -> exit)
                               and tandem-init `hello` (exec -> TANDEM-READY line -> exit)
Container commands are timed by lab-time (guest-images/lab/lab-time.c), a small static program,
so their peak RSS (wait4's ru_maxrss) is the runtime's own and not this Python's.
Commands run in a new random order each round (fixed seed). Then, with --density, N idle containers (`sleep`) at once: host memory per container.

Timestamps are CLOCK_MONOTONIC on both sides, taken right before posix_spawn and from the VMM's
JSON, so exec -> ready is comparable with exec -> exit. This is an interim harness; `tandem bench`
replaces it when the bench issue lands.
"""
import argparse
import ctypes
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18


def spawn(argv, stdout=subprocess.DEVNULL):
    """posix_spawn + wait: returns (start_ns, end_ns, status, stdout_text). (A child's ru_maxrss is
    not used: across exec Linux keeps the spawning process's peak in it.)"""
    read_fd = write_fd = None
    file_actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 2, "/dev/null", os.O_WRONLY, 0)]
    if stdout == subprocess.PIPE:
        read_fd, write_fd = os.pipe()
        file_actions.append((os.POSIX_SPAWN_DUP2, write_fd, 1))
    else:
        file_actions.append((os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0))
    start = time.monotonic_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=file_actions)
    output = b""
    if read_fd is not None:
        os.close(write_fd)
        while chunk := os.read(read_fd, 65536):
            output += chunk
        os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    end = time.monotonic_ns()
    return start, end, os.waitstatus_to_exitcode(status), output.decode()


def hide_cgroup2_for_crun():
    """crun 1.8 refuses the v1/v2 hybrid layout; in a private mount namespace without the empty
    cgroup2 mount it runs. Every command of this benchmark then runs in that namespace alike."""
    if not os.path.ismount("/sys/fs/cgroup/unified"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        raise OSError(ctypes.get_errno(), "mount --make-rprivate /")
    if libc.umount2(b"/sys/fs/cgroup/unified", 0) != 0:
        raise OSError(ctypes.get_errno(), "umount /sys/fs/cgroup/unified")
    return True


FLOOR = "KVM floor (C) hello16"

# The VMM's own timestamps (`monotonic_ns` in `vm run --json`), in the order a run passes them.
STEPS = ("process_start", "vm_created", "image_loaded", "first_run", "ready", "exit")

IMAGE_ROOTFS = os.path.join(ROOT, "guest-images/build/image/rootfs")
LAB_TIME = os.path.join(ROOT, "guest-images/build/lab/lab-time")


def make_bundle(directory, args):
    """An OCI bundle over the guest image's rootfs (read-only, as Tandem's lower layer)."""
    os.makedirs(directory)
    subprocess.run(["runc", "spec", "--bundle", directory], check=True)
    with open(os.path.join(directory, "config.json")) as handle:
        config = json.load(handle)
    config["root"] = {"path": IMAGE_ROOTFS, "readonly": True}
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)


def timed(label, argv):
    """Runs argv under lab-time; returns (status, ready_ms or None, exit_ms, maxrss_mib)."""
    _, _, status, out = spawn([LAB_TIME, label] + argv, stdout=subprocess.PIPE)
    line = [l for l in out.splitlines() if l.startswith("LAB-TIME ")][-1]
    fields = dict(part.split("=", 1) for part in line.split()[1:])
    ready = float(fields["ready_ms"])
    return int(fields["status"]), (None if ready < 0 else ready), float(fields["exit_ms"]), int(fields["maxrss_kib"]) / 1024


def density(tandem, counts):
    """Starts N idle containers at once (tandem ctr run -d -- sleep) and measures what the host
    pays per container: its cgroup's memory charge plus the PSS of its monitor process."""
    results = {}
    for count in counts:
        state = tempfile.mkdtemp(prefix="tandem-density-")
        ids = []
        try:
            for _ in range(count):
                out = subprocess.run([tandem, "ctr", "run", "-d", "--state-root", state, "--", "/bin/sleep", "1000"],
                                     capture_output=True, text=True, check=True).stdout.strip()
                ids.append(out)
            time.sleep(0.5)
            charge = pss = 0
            for cid in ids:
                with open(os.path.join(state, cid, "state.json")) as handle:
                    fields = json.load(handle)
                for directory in fields["cgroups"]:
                    for name in ("memory.usage_in_bytes", "memory.current"):
                        path = os.path.join(directory, name)
                        if directory.endswith(cid) and os.path.exists(path):
                            charge += int(open(path).read())
                with open(f"/proc/{fields['monitor']}/smaps_rollup") as handle:
                    for line in handle:
                        if line.startswith("Pss:"):
                            pss += int(line.split()[1]) * 1024
            results[count] = {"containers": count, "cgroup_charge_mib": charge / 1048576, "monitor_pss_mib": pss / 1048576,
                              "per_container_mib": (charge + pss) / count / 1048576}
            print(f"density {count:4}: {results[count]['per_container_mib']:.2f} MiB per idle container "
                  f"(cgroup charge {charge / count / 1048576:.2f} + monitor PSS {pss / count / 1048576:.2f})")
        finally:
            for cid in ids:
                subprocess.run([tandem, "ctr", "rm", "-f", "--state-root", state, cid], capture_output=True)
            shutil.rmtree(state, ignore_errors=True)
    return results


def summarise(values):
    ordered = sorted(values)
    n = len(ordered)
    pick = lambda q: ordered[min(n - 1, max(0, round(q * (n - 1))))]
    return {"n": n, "median": statistics.median(ordered), "p5": pick(0.05), "p95": pick(0.95),
            "min": ordered[0], "max": ordered[-1]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--tandem", default=os.path.join(ROOT, ".build/release/tandem"))
    parser.add_argument("--no-containers", action="store_true", help="skip the container runtimes")
    parser.add_argument("--density", default="", help="comma-separated counts of idle containers at once (e.g. 1,10,100)")
    parser.add_argument("--out", default=os.path.join(ROOT, "reports/launch/latest.json"))
    parser.add_argument("--gap", type=float, default=0, help="idle milliseconds before each command: a single run "
                        "after an idle spell (on cgroup v1 the first process move after one, by cgroup.procs, waits "
                        "for an RCU grace period; back-to-back runs share one)")
    args = parser.parse_args()

    host = json.loads(subprocess.run([args.tandem, "host", "--json"], capture_output=True, check=True, text=True).stdout)
    mode = host["virtualisation"]["mode"]
    print(f"host: {host['cpu_model']}, {host['cpu_count']} CPUs, kernel {host['kernel_release']}")
    print(f"virtualisation: {mode} — {host['virtualisation']['explanation']}")

    commands = {
        "tandem vm run --tiny hello": [args.tandem, "vm", "run", "--tiny", "hello", "--json"],
        "tandem vm run --tiny hello16": [args.tandem, "vm", "run", "--tiny", "hello16", "--json"],
        "tandem --version": [args.tandem, "--version"],
        "/bin/true": ["/bin/true"],
    }
    workdir = tempfile.mkdtemp(prefix="tandem-bench-")
    notes = []
    try:
        # The floor under the tiny VM: the same real-mode guest run by a C program that makes only
        # the KVM calls a VMM cannot leave out (scripts/kvm_floor.c); tandem's own cost is the gap.
        floor = os.path.join(workdir, "kvm_floor")
        hello16 = os.path.join(ROOT, "guest-images/build/tiny/hello16.bin")
        built = subprocess.run(["cc", "-O2", "-static", "-o", floor, os.path.join(ROOT, "scripts/kvm_floor.c")],
                               capture_output=True, text=True)
        if built.returncode == 0 and os.path.exists(hello16):
            commands[FLOOR] = [floor, hello16]
        else:
            notes.append(f"KVM floor not measured: {built.stderr.strip() or 'no ' + hello16}")
        if not args.no_containers and os.geteuid() == 0:
            if hide_cgroup2_for_crun():
                notes.append("all commands ran in a private mount namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 needs it on this hybrid layout)")
            make_bundle(os.path.join(workdir, "bundle-true"), ["/bin/true"])
            make_bundle(os.path.join(workdir, "bundle-hello"), ["/init", "hello"])
            commands["tandem ctr run (true)"] = ["LABTIME", args.tandem, "ctr", "run", "--", "/bin/true"]
            commands["tandem ctr run (hello)"] = ["LABTIME", args.tandem, "ctr", "run", "--workload", "hello"]
            for runtime in ("crun", "runc"):
                path = shutil.which(runtime)
                if path:
                    state = os.path.join(workdir, f"state-{runtime}")
                    for workload in ("true", "hello"):
                        commands[f"{runtime} run ({workload})"] = ["LABTIME", path, "--root", state, "run", "--bundle",
                                                                   os.path.join(workdir, f"bundle-{workload}"), "ID"]
                else:
                    notes.append(f"{runtime}: not installed")
        samples = {name: {"exit": [], "ready": []} for name in commands}
        order = list(commands.items())
        shuffler = random.Random(20261123)
        for trial in range(args.runs):
            # Interleaved, in a new order each round: whatever the first command of a round pays
            # (here: the cgroup v1 migration's RCU grace period after an idle spell) spreads evenly.
            shuffler.shuffle(order)
            for name, argv in order:
                if args.gap:
                    time.sleep(args.gap / 1000)
                argv = [a.replace("ID", f"tandem-bench-{os.getpid()}-{trial}") if a == "ID" else a for a in argv]
                if argv[0] == "LABTIME":
                    status, ready, exit_ms, maxrss = timed(name.split()[0], argv[1:])
                    if status != 0:
                        print(f"{name}: exit status {status} (trial {trial})", file=sys.stderr)
                        continue
                    samples[name]["exit"].append(exit_ms)
                    if ready is not None:
                        samples[name]["ready"].append(ready)
                    samples[name].setdefault("maxrss_mib", []).append(maxrss)
                    continue
                json_out = name.startswith("tandem vm run") or name == FLOOR
                start, end, status, out = spawn(argv, stdout=subprocess.PIPE if json_out else subprocess.DEVNULL)
                if status != 0:
                    print(f"{name}: exit status {status} (trial {trial})", file=sys.stderr)
                    continue
                samples[name]["exit"].append((end - start) / 1e6)
                if name == FLOOR:
                    samples[name]["ready"].append((json.loads(out)["monotonic_ns"]["ready"] - start) / 1e6)
                elif json_out:
                    report = json.loads(out)
                    samples[name]["ready"].append((report["monotonic_ns"]["ready"] - start) / 1e6)
                    for key in ("peak_rss_bytes", "rss_anon_bytes", "rss_file_bytes", "vmm_overhead_bytes"):
                        samples[name].setdefault(key, []).append(report[key] / 1048576)
                    samples[name].setdefault("setup", []).append(
                        (report["monotonic_ns"]["first_run"] - start) / 1e6)
                    # Where the run's time goes: each step between the VMM's timestamps, from the
                    # spawn to waitpid's return (its last step: guest exit → exit status seen).
                    stamps = [("spawn", start)] + [(k, report["monotonic_ns"][k]) for k in STEPS] + [("status", end)]
                    for (_, before), (step, after) in zip(stamps, stamps[1:]):
                        samples[name].setdefault("step:" + step, []).append((after - before) / 1e6)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results = {"schema": "tandem.bench-launch/1", "host": host, "runs": args.runs, "gap_ms": args.gap, "notes": notes, "commands": {}}
    gap = f", each after {args.gap:g} ms idle" if args.gap else ""
    print(f"\n{args.runs} runs each, interleaved{gap}; milliseconds: median [p5–p95] min–max\n")
    print(f"{'command':30} {'exec→ready':>30} {'exec→exit':>30}")
    for name, data in samples.items():
        if not data["exit"]:
            print(f"{name:34} failed every run")
            continue
        entry = {metric: summarise(values) for metric, values in data.items() if values}
        results["commands"][name] = entry
        fmt = lambda s: f"{s['median']:6.2f} [{s['p5']:.2f}–{s['p95']:.2f}] {s['min']:.2f}–{s['max']:.2f}" if s else "—"
        print(f"{name:30} {fmt(entry.get('ready')):>30} {fmt(entry['exit']):>30}")
    vm = results["commands"].get("tandem vm run --tiny hello")
    if vm:
        print(f"\ntiny VM: exec→first KVM_RUN {vm['setup']['median']:.2f} ms median")
        floor = results["commands"].get("/bin/true")
        if floor:
            # Issue 19's targets are these ratios (medians): exec→ready ≤ 2.0×, exec→exit ≤ 3.0× /bin/true.
            print(f"tiny VM ÷ /bin/true (medians): exec→ready {vm['ready']['median'] / floor['exit']['median']:.2f}×, "
                  f"exec→exit {vm['exit']['median'] / floor['exit']['median']:.2f}×")
        steps = ", ".join(f"→ {step.removeprefix('step:')} {vm[step]['median']:.2f}" for step in vm if step.startswith("step:"))
        print(f"tiny VM steps (ms, medians; from the spawn): {steps}")
        real, bare = results["commands"].get("tandem vm run --tiny hello16"), results["commands"].get(FLOOR)
        if real and bare and floor:
            fl = floor["exit"]["median"]
            print(f"hello16 (real mode), tandem vs the KVM floor (medians, ÷ /bin/true): exec→ready "
                  f"{real['ready']['median']:.2f} ({real['ready']['median'] / fl:.2f}×) vs {bare['ready']['median']:.2f} "
                  f"({bare['ready']['median'] / fl:.2f}×); exec→exit {real['exit']['median']:.2f} ({real['exit']['median'] / fl:.2f}×) "
                  f"vs {bare['exit']['median']:.2f} ({bare['exit']['median'] / fl:.2f}×)")
        print(f"tiny VM memory (MiB, median): peak RSS {vm['peak_rss_bytes']['median']:.2f} = guest RAM touched + "
              f"{vm['vmm_overhead_bytes']['median']:.2f} VMM overhead; at exit {vm['rss_anon_bytes']['median']:.2f} private "
              f"(anonymous) + {vm['rss_file_bytes']['median']:.2f} file-backed (binary and shared libraries, shared page cache)")
    for name, entry in results["commands"].items():
        if "maxrss_mib" in entry:
            print(f"peak RSS {name}: {entry['maxrss_mib']['median']:.2f} MiB (wait4 ru_maxrss, median)")
    crun, runc, ours = (results["commands"].get(k) for k in ("crun run (true)", "runc run (true)", "tandem ctr run (true)"))
    if ours and crun and runc:
        print(f"tandem ctr run / crun (true, medians): {ours['exit']['median'] / crun['exit']['median']:.2f}; "
              f"/ runc: {ours['exit']['median'] / runc['exit']['median']:.2f}")
    if args.density and os.geteuid() == 0:
        results["density"] = density(args.tandem, [int(c) for c in args.density.split(",")])
    for note in notes:
        print(f"note: {note}")
    print(f"note: virtualisation mode here is '{mode}'" + (" — the guest's own run time is emulated, not hardware speed" if mode == "emulated" else ""))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"raw figures: {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
