#!/usr/bin/env python3
"""Writes scripts/tandem.order: the functions and data `tandem`'s launch paths touch, in the order
they first touch them, for lld's --symbol-ordering-file (`make build` links tandem with it).

Why: the kernel maps a file-backed page fault's neighbours too ("fault-around": the 64 KiB-aligned
window around it, of what is in the page cache), so a process's resident text is 64 KiB for each
window it touched. Spread over the 8 MB static binary, `tandem vm run --tiny hello` touched 63 such
windows, 4.5 MiB of its 4.7 MiB "VMM overhead", and paid a ~6 us fault for each. Laid out in the
order they run, the same functions need a handful of windows.

How: valgrind's lackey (Debian's valgrind) traces each command below on a copy of the release binary
without debug info (valgrind 3.19 cannot read DWARF 5): every superblock's address (with chasing off,
every function entry starts one) and every load and store; addresses map to symbols through nm. A
symbol whose input section is larger than 64 KiB is left out: the Swift stdlib, _StringProcessing and
_RegexParser archives keep most functions in one .text section each (1.6 MB for the stdlib), and
ordering one symbol of it would move all of it into the middle of the hot range. Section sizes come
from the link map `make build` writes (.build/tandem.map).

Run it after changes to the launch path (`make link-order`, then `make build`); a stale order file
costs memory and start time, never correctness (lld ignores names it does not find).
"""
import argparse
import bisect
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WINDOW = 64 * 1024  # the kernel's default fault_around_bytes

# The launch paths, most important first: functions first touched by an earlier command come first.
# A command may fail under valgrind (the teardown holder's clone(CLONE_VM) is one valgrind refuses);
# what ran until then is still traced.
SCENARIOS = [
    ["vm", "run", "--tiny", "hello"],
    ["vm", "run", "--tiny", "hello", "--json"],
    ["vm", "run", "--tiny", "spin", "--timeout", "0.3"],
    ["ctr", "run", "--", "/bin/true"],
    ["vm", "run", "--allow-emulated", "--timeout", "0.5"],
]


def symbols(binary, types):
    """(address, size, name) of the binary's symbols of the given nm types, by address."""
    out = subprocess.run(["nm", "-n", "-S", binary], capture_output=True, text=True, check=True).stdout
    result = []
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in types:
            result.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    return result


def lookup(table, starts, address):
    index = bisect.bisect_right(starts, address) - 1
    if index < 0:
        return None
    start, size, name = table[index]
    return name if address < start + max(size, 1) else None


def big_section_symbols(map_path):
    """Names of symbols whose input section (lld -Map) is larger than one fault-around window."""
    big = set()
    section_size = 0
    with open(map_path) as handle:
        for line in handle:
            fields = line.split(None, 4)
            if len(fields) < 5:
                continue
            body = fields[4].strip()
            if ":(" in body:  # an input section: "file:(section)"
                section_size = int(fields[2], 16)
            elif body.startswith("."):  # an output section
                section_size = 0
            elif section_size > WINDOW:
                big.add(body)
    return big


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tandem", default=os.path.join(ROOT, ".build/release/tandem"))
    parser.add_argument("--map", default=os.path.join(ROOT, ".build/tandem.map"))
    parser.add_argument("--out", default=os.path.join(ROOT, "scripts/tandem.order"))
    args = parser.parse_args()
    for tool in ("valgrind", "objcopy", "nm"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            sys.exit(f"link_order.py: {tool} is missing (apt-get install valgrind binutils)")
    if not os.path.exists(args.map):
        sys.exit(f"link_order.py: no link map at {args.map} (make build writes it)")

    # Beside the original, so that it finds the tiny guests where tandem looks for them.
    traced = args.tandem + "-trace"
    subprocess.run(["objcopy", "--strip-debug", args.tandem, traced], check=True)
    functions = symbols(traced, "tTwW")
    data = symbols(traced, "dDrRbBvV")
    function_starts = [s[0] for s in functions]
    data_starts = [s[0] for s in data]
    function_order, data_order, seen = [], [], set()
    try:
        with tempfile.TemporaryDirectory(prefix="tandem-link-order.") as scratch:
            for number, scenario in enumerate(SCENARIOS):
                log = os.path.join(scratch, f"{number}.log")
                command = ["valgrind", "--tool=lackey", "--trace-superblocks=yes", "--trace-mem=yes",
                           "--vex-guest-chase=no", f"--log-file={log}", traced] + scenario
                status = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, timeout=300).returncode
                before = len(function_order) + len(data_order)
                with open(log) as handle:
                    for line in handle:
                        if line.startswith("SB "):
                            name = lookup(functions, function_starts, int(line[3:], 16))
                            target = function_order
                        elif line[:2] in (" L", " S", " M"):
                            name = lookup(data, data_starts, int(line.split()[1].split(",")[0], 16))
                            target = data_order
                        else:
                            continue
                        if name is not None and name not in seen:
                            seen.add(name)
                            target.append(name)
                added = len(function_order) + len(data_order) - before
                print(f"tandem {' '.join(scenario)}: status {status}, {added} new symbols")
    finally:
        os.remove(traced)

    big = big_section_symbols(args.map)
    kept_functions = [name for name in function_order if name not in big]
    kept_data = [name for name in data_order if name not in big]
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    with open(args.out, "w") as handle:
        handle.write(f"# Written by scripts/link_order.py at {commit or 'an unknown commit'}: the symbols tandem's launch\n"
                     "# paths touch, in first-touch order, for lld's --symbol-ordering-file (see the script).\n")
        for name in kept_functions + kept_data:
            handle.write(name + "\n")
    print(f"{args.out}: {len(kept_functions)} functions, {len(kept_data)} data symbols "
          f"({len(function_order) + len(data_order) - len(kept_functions) - len(kept_data)} left out: "
          f"in input sections over {WINDOW // 1024} KiB)")


if __name__ == "__main__":
    main()
