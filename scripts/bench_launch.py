#!/usr/bin/env python3
"""Launch-cost benchmark for the foundation (issue: tiny microVM start vs. container runtimes).

Runs each command N times, interleaved (A B C A B C ...), and reports median, spread and peak RSS:
  tandem vm run --tiny hello   exec -> ready-port write (the VMM's CLOCK_MONOTONIC timestamp) and -> exit
  tandem --version             the launcher's own start cost
  /bin/true                    the floor: exec of a trivial static-ish program
  crun run / runc run          a busybox `true` OCI bundle (exec -> exit)

Timestamps are CLOCK_MONOTONIC on both sides, taken right before posix_spawn and from the VMM's
JSON, so exec -> ready is comparable with exec -> exit. This is an interim harness; `tandem bench`
replaces it when the bench issue lands.
"""
import argparse
import ctypes
import json
import os
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


def make_bundle(directory):
    rootfs = os.path.join(directory, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    for sub in ("proc", "sys", "dev", "tmp"):
        os.makedirs(os.path.join(rootfs, sub))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "true"))
    os.symlink("busybox", os.path.join(rootfs, "bin", "sh"))
    subprocess.run(["runc", "spec", "--bundle", directory], check=True)
    with open(os.path.join(directory, "config.json")) as handle:
        config = json.load(handle)
    config["process"]["terminal"] = False
    config["process"]["args"] = ["/bin/true"]
    with open(os.path.join(directory, "config.json"), "w") as handle:
        json.dump(config, handle, indent=2)


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
    parser.add_argument("--no-containers", action="store_true", help="skip crun and runc")
    parser.add_argument("--out", default=os.path.join(ROOT, "reports/launch/latest.json"))
    args = parser.parse_args()

    host = json.loads(subprocess.run([args.tandem, "host", "--json"], capture_output=True, check=True, text=True).stdout)
    mode = host["virtualisation"]["mode"]
    print(f"host: {host['cpu_model']}, {host['cpu_count']} CPUs, kernel {host['kernel_release']}")
    print(f"virtualisation: {mode} — {host['virtualisation']['explanation']}")

    commands = {
        "tandem vm run --tiny hello": [args.tandem, "vm", "run", "--tiny", "hello", "--json"],
        "tandem --version": [args.tandem, "--version"],
        "/bin/true": ["/bin/true"],
    }
    workdir = tempfile.mkdtemp(prefix="tandem-bench-")
    notes = []
    try:
        if not args.no_containers and os.geteuid() == 0:
            if hide_cgroup2_for_crun():
                notes.append("all commands ran in a private mount namespace with /sys/fs/cgroup/unified unmounted (crun 1.8 needs it on this hybrid layout)")
            make_bundle(os.path.join(workdir, "bundle"))
            for runtime in ("crun", "runc"):
                path = shutil.which(runtime)
                if path:
                    state = os.path.join(workdir, f"state-{runtime}")
                    commands[f"{runtime} run (busybox true)"] = [path, "--root", state, "run", "--bundle",
                                                                os.path.join(workdir, "bundle"), "ID"]
                else:
                    notes.append(f"{runtime}: not installed")
        samples = {name: {"exit": [], "ready": []} for name in commands}
        for trial in range(args.runs):
            for name, argv in commands.items():
                argv = [a.replace("ID", f"tandem-bench-{os.getpid()}-{trial}") if a == "ID" else a for a in argv]
                json_out = name.startswith("tandem vm run")
                start, end, status, out = spawn(argv, stdout=subprocess.PIPE if json_out else subprocess.DEVNULL)
                if status != 0:
                    print(f"{name}: exit status {status} (trial {trial})", file=sys.stderr)
                    continue
                samples[name]["exit"].append((end - start) / 1e6)
                if json_out:
                    report = json.loads(out)
                    samples[name]["ready"].append((report["monotonic_ns"]["ready"] - start) / 1e6)
                    for key in ("peak_rss_bytes", "rss_anon_bytes", "rss_file_bytes", "vmm_overhead_bytes"):
                        samples[name].setdefault(key, []).append(report[key] / 1048576)
                    samples[name].setdefault("setup", []).append(
                        (report["monotonic_ns"]["first_run"] - start) / 1e6)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    results = {"schema": "tandem.bench-launch/1", "host": host, "runs": args.runs, "notes": notes, "commands": {}}
    print(f"\n{args.runs} runs each, interleaved; milliseconds: median [p5–p95] min–max\n")
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
        print(f"tiny VM memory (MiB, median): peak RSS {vm['peak_rss_bytes']['median']:.2f} = guest RAM touched + "
              f"{vm['vmm_overhead_bytes']['median']:.2f} VMM overhead; at exit {vm['rss_anon_bytes']['median']:.2f} private "
              f"(anonymous) + {vm['rss_file_bytes']['median']:.2f} file-backed (binary and shared libraries, shared page cache)")
    for note in notes:
        print(f"note: {note}")
    print(f"note: virtualisation mode here is '{mode}'" + (" — the guest's own run time is emulated, not hardware speed" if mode == "emulated" else ""))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print(f"raw figures: {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
