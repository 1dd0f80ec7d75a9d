#!/usr/bin/env bash
# Starts (up) or stops (down) the libvirt daemon for Tandem's libvirt backend, on machines where
# no init system does it (these have no systemd as PID 1). `up` leaves a running daemon alone;
# `down` stops only a daemon `up` started. What this host needs (docs/libvirt.md):
#  - virtlogd first, then libvirtd, on qemu:///system;
#  - libvirtd runs under a child subreaper that reaps at once: QEMU processes are daemonized and
#    otherwise wait for PID 1 here, which reaps only every ~1.3 s and delays libvirt's "Stopped".
set -euo pipefail
socket=/run/libvirt/libvirt-sock
marker=/run/tandem/libvirtd-started-by-tandem
case "${1:-up}" in
  up)
    command -v libvirtd >/dev/null || { echo "libvirtd.sh: libvirtd is not installed (apt-get install libvirt-daemon-system)" >&2; exit 1; }
    mkdir -p /run/tandem
    # virtlogd by its socket answering, not by pgrep (a virtlogd that is exiting, or a zombie PID 1
    # has not reaped, matches pgrep) nor by the socket file (a virtlogd that died leaves it: CI
    # then failed every libvirt test with "Failed to connect socket to .../virtlogd-sock:
    # Connection refused"), and before the early exit below: a running libvirtd without virtlogd
    # cannot start a guest.
    answers() { python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])' "$1" 2>/dev/null; }
    if ! answers /run/libvirt/virtlogd-sock; then
      rm -f /run/libvirt/virtlogd-sock
      virtlogd -d
      touch "$marker.virtlogd"
      for _ in $(seq 1 50); do answers /run/libvirt/virtlogd-sock && break; sleep 0.1; done
    fi
    if [ -S "$socket" ] && virsh -c qemu:///system version >/dev/null 2>&1; then exit 0; fi
    setsid python3 - >/dev/null 2>&1 <<'PY' &
import ctypes, os, signal
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
daemon = os.fork()
if daemon == 0:
    os.execvp("libvirtd", ["libvirtd"])
signal.signal(signal.SIGTERM, lambda *_: os.kill(daemon, signal.SIGTERM))
while True:
    try:
        pid, _ = os.wait()
    except ChildProcessError:
        break
    except InterruptedError:
        continue
    if pid == daemon:
        break
PY
    echo $! > "$marker"
    for _ in $(seq 1 100); do
      [ -S "$socket" ] && virsh -c qemu:///system version >/dev/null 2>&1 && exit 0
      sleep 0.1
    done
    echo "libvirtd.sh: libvirtd did not come up (no $socket after 10 s)" >&2
    exit 1
    ;;
  down)
    # Gone (zombies aside: PID 1 reaps late here) before `down` returns, so an `up` that follows
    # at once never finds a daemon on its way out: SIGTERM, up to 30 s, then SIGKILL. (It waited
    # 5 s before, and a virtlogd once outlived that with its socket already removed.)
    stop() {
      pkill -TERM -x "$1" || true
      for _ in $(seq 1 300); do pgrep -x "$1" -r R,S,D,T >/dev/null || return 0; sleep 0.1; done
      echo "libvirtd.sh: $1 did not stop within 30 s of SIGTERM; killing it" >&2
      pkill -KILL -x "$1" || true
      for _ in $(seq 1 50); do pgrep -x "$1" -r R,S,D,T >/dev/null || return 0; sleep 0.1; done
    }
    if [ -f "$marker" ]; then
      stop libvirtd
      rm -f "$marker"
    fi
    if [ -f "$marker.virtlogd" ]; then
      stop virtlogd
      rm -f "$marker.virtlogd" /run/libvirt/virtlogd-sock
    fi
    ;;
  *) echo "usage: scripts/libvirtd.sh up|down" >&2; exit 2 ;;
esac
