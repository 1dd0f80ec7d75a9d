import Bench
import GuestImages
import HostOS

extension NestedLab {
    /// L1's root: the guest image (busybox, workloads) with the lab's /init and /lab.
    static func assemble(_ inputs: LabInputs, _ options: LabOptions) throws(LabError) -> [ImageEntry] {
        var entries: [ImageEntry]
        do { entries = try GuestImage.assemble(.init(programs: inputs.programs)).entries } catch { throw LabError(error.description) }
        entries.removeAll { $0.path == "init" || $0.path == "bin/tandem-init" }
        var paths = Set(entries.map(\.path))

        func file(_ path: String, from source: String, mode: UInt32 = 0o644) throws(LabError) {
            let bytes: [UInt8]
            do { bytes = try Files.read(source) } catch { throw LabError("cannot read \(source): \(error)") }
            directories(of: path)
            entries.append(ImageEntry(path: path, kind: .file(bytes), permissions: mode))
            paths.insert(path)
        }
        func directories(of path: String) {
            var parent = ""
            for component in path.split(separator: "/").dropLast() {
                parent += parent.isEmpty ? String(component) : "/" + component
                if paths.insert(parent).inserted { entries.append(ImageEntry(path: parent, kind: .directory, permissions: 0o755)) }
            }
        }

        try file("lab/tandem", from: inputs.tandem, mode: 0o755)
        try file("lab/lab-time", from: inputs.labTime, mode: 0o755)
        try file("lab/vmlinuz", from: inputs.l2Kernel)
        try file("lab/l2.cpio", from: inputs.image)
        for (index, drive) in options.drives.enumerated() { try file("lab/drive\(index).img", from: LabOptions.drivePath(drive)) }
        for module in inputs.modules { try file("lab/" + (module.split(separator: "/").last.map(String.init) ?? module), from: module) }
        // The launcher may be a dynamic build (swift build without -static-executable): bring its libraries.
        var libraries = try LabInputs.sharedLibraries(of: inputs.tandem)
        if let qemu = inputs.qemu {
            try file("lab/qemu-system-x86_64", from: qemu, mode: 0o755)
            for name in LabInputs.qemuDataFiles { try file("lab/qemu/\(name)", from: "/usr/share/qemu/\(name)") }
            libraries += try LabInputs.sharedLibraries(of: qemu)
        }
        if let tool = inputs.loadTool, let server = options.server {
            try file("lab/" + server.tool, from: tool, mode: 0o755)
            if server == .http {
                directories(of: "lab/wrk-report.lua")
                entries.append(ImageEntry(path: "lab/wrk-report.lua", kind: .file(Array(ServerBench.wrkScript.utf8)), permissions: 0o644))
            }
            libraries += try LabInputs.sharedLibraries(of: tool)
        }
        for library in Set(libraries).sorted() where !paths.contains(String(library.dropFirst())) {
            try file(String(library.dropFirst()), from: library, mode: 0o755)
        }
        if options.net {
            // QEMU runs this with its tap's name once it has made it: the same host address Tandem gives tandem0.
            directories(of: "lab/ifup")
            entries.append(ImageEntry(path: "lab/ifup", kind: .file(Array("#!/bin/sh\nip addr add \(LabOptions.l1Address)/24 dev \"$1\" && ip link set \"$1\" up\n".utf8)), permissions: 0o755))
        }
        entries.append(ImageEntry(path: "init", kind: .file(Array(initScript(options, qemu: inputs.qemu != nil, modules: inputs.modules.map { String($0.split(separator: "/").last ?? "") }).utf8)), permissions: 0o755))
        return CpioWriter.sorted(entries)
    }

    /// With `net`: L1's side of netio around each boot (`netio sink` takes what comes to 5001;
    /// `netio send` retries L2's 5002 for a minute and sends until L2 closes); what L1's own
    /// programs print goes nowhere, so it cannot pass for L2's figures.
    static let netPeer = """
        peer_start() {
          rm -f /tmp/net-rx.bin
          netio sink 5001 > /tmp/net-rx.bin 2>/dev/null &
          receiver=$!
          netio send \(LabOptions.l2Address) 5002 4096 >/dev/null 2>&1 &
          sender=$!
        }
        peer_end() {
          kill $receiver $sender 2>/dev/null; wait $receiver $sender 2>/dev/null
          echo "LAB-NET sha256=$(sha256sum < /tmp/net-rx.bin | cut -d' ' -f1) bytes=$(wc -c < /tmp/net-rx.bin)"
        }
        """

    /// With `vsock`: L1's side of vsockio around each boot (`vsockio sink` takes what L2 sends to
    /// host port 5001; `vsockio echo-peer` connects to L2's port 5002, retrying for a minute, and
    /// keeps what comes back) — through Tandem's Unix socket, or for QEMU's vhost-vsock through
    /// L1's own AF_VSOCK (`vsock_start_qemu`); their sha256 as `LAB-VSOCK`.
    static let vsockPeer = """
        vsock_start() {
          rm -f /tmp/vsock-rx.bin /tmp/vsock-echo.bin
          vsockio sink \(LabOptions.vsockPath)_5001 > /tmp/vsock-rx.bin 2>/dev/null &
          vsock_receiver=$!
          vsockio echo-peer \(LabOptions.vsockPath) 5002 > /tmp/vsock-echo.bin 2>/dev/null &
          vsock_echoer=$!
        }
        vsock_start_qemu() {
          rm -f /tmp/vsock-rx.bin /tmp/vsock-echo.bin
          vsockio vsock-sink 5001 > /tmp/vsock-rx.bin 2>/dev/null &
          vsock_receiver=$!
          vsockio vsock-echo-peer 3 5002 > /tmp/vsock-echo.bin 2>/dev/null &
          vsock_echoer=$!
        }
        vsock_end() {
          kill $vsock_receiver $vsock_echoer 2>/dev/null; wait $vsock_receiver $vsock_echoer 2>/dev/null
          echo "LAB-VSOCK received_sha256=$(sha256sum < /tmp/vsock-rx.bin | cut -d' ' -f1) received_bytes=$(wc -c < /tmp/vsock-rx.bin) echoed_sha256=$(sha256sum < /tmp/vsock-echo.bin | cut -d' ' -f1) echoed_bytes=$(wc -c < /tmp/vsock-echo.bin)"
        }
        """

    /// With `loadSeconds` (the server mode): `serve CMD…` starts the timed VMM in the background,
    /// waits for L2's server to answer (LAB-FIRST-RESPONSE), loads it (wrk's WRK-RESULT line, or
    /// redis-benchmark's CSV line for GET; their other output is left out), then stops the VMM
    /// with SIGTERM — lab-time passes it on, and prints the boot's LAB-TIME line once the VMM is gone.
    static func serverPeer(_ options: LabOptions) -> String {
        let seconds = options.loadSeconds ?? 0
        let server = options.server ?? .http
        let target = "\(LabOptions.l2Address) \(options.serverPort)"
        let load = server == .http
            ? "/lab/wrk -t \(LabOptions.loadThreads) -c \(LabOptions.loadConnections) -d \(seconds)s --timeout 5s -s /lab/wrk-report.lua http://\(LabOptions.l2Address):\(options.serverPort)/ | grep '^WRK-RESULT '"
            : "/lab/redis-benchmark -h \(LabOptions.l2Address) -p \(options.serverPort) -c \(LabOptions.loadConnections) -n \(LabOptions.labRedisRequestsPerSecond * seconds) -t get --csv | grep '^\"GET\"'"
        return """
            serve() {
              "$@" < /dev/null &
              timed=$!
              if /lab/lab-time --first-response \(target) \(Int(options.bootTimeoutSeconds)) \(server.rawValue); then
                \(load)
              fi
              kill -TERM $timed 2>/dev/null
              wait $timed
            }
            """
    }

    /// L1's /init: mount, load kvm-amd, then boot L2 `runs` times per VMM, interleaved.
    /// `modules`: the file names under /lab, in load order (kvm-amd last, with nested SVM on).
    static func initScript(_ options: LabOptions, qemu: Bool, modules: [String]) -> String {
        let loads = modules.map { name in
            name.hasPrefix("kvm-amd.") || name.hasPrefix("kvm_amd.")
                ? "insmod /lab/\(name) nested=1 npt=1 || echo \"LAB-ERROR insmod \(name) failed (is L1's CPU an EPYC with SVM?)\""
                : "insmod /lab/\(name) || echo \"LAB-ERROR insmod \(name) failed\""
        }.joined(separator: "\n")
        var extra = options.commandLine
        if let arguments = options.arguments { extra += (extra.isEmpty ? "" : " ") + "tandem.args=\(arguments)" }
        let vmRun = "/lab/tandem vm run --kernel /lab/vmlinuz --initrd /lab/l2.cpio"
            + " --memory \(options.memoryMiB) --vcpus \(options.vcpus) --timeout \(Int(options.bootTimeoutSeconds))"
            + (options.workload.isEmpty ? "" : " --workload \(options.workload)") + (extra.isEmpty ? "" : " --cmdline '\(extra)'")
            + options.drives.enumerated().map { index, drive in
                (options.rootDisk && index == 0 ? " --root-disk" : " --drive") + " /lab/drive\(index).img" + (LabOptions.driveIsReadOnly(drive) ? ",ro" : "")
            }.joined()
            + (options.net ? " --net tap" : "")
            + (options.vsock ? " --vsock \(LabOptions.vsockPath)" : "")
        let tandem = "/lab/lab-time tandem " + vmRun + " --json"
        let qemuLine = "/lab/lab-time qemu /lab/qemu-system-x86_64 -L /lab/qemu -M microvm -enable-kvm -cpu host"
            + " -m \(options.memoryMiB) -smp \(options.vcpus) -nodefaults -no-user-config -display none -serial stdio"
            + " -monitor none -no-reboot -kernel /lab/vmlinuz -initrd /lab/l2.cpio"
            + options.drives.enumerated().map { index, drive in
                " -drive file=/lab/drive\(index).img,format=raw,if=none,id=drive\(index)\(LabOptions.driveIsReadOnly(drive) ? ",readonly=on" : "")"
                    + " -device virtio-blk-device,drive=drive\(index),serial=tandem-\(index)"
            }.joined()
            + (options.net ? " -netdev tap,id=net0,ifname=tandemq,script=/lab/ifup,downscript=no -device virtio-net-device,netdev=net0" : "")
            + (options.vsock ? " -device vhost-vsock-device,guest-cid=3" : "")
            + " -append '\(qemuBaseCommandLine)\(options.rootDisk ? " tandem.root=/dev/vda" : "")"
            + (options.net ? " tandem.net=\(LabOptions.l2Address)/24,\(LabOptions.l1Address)" : "")
            + "\(options.workload.isEmpty ? "" : " tandem.workload=" + options.workload)\(extra.isEmpty ? "" : " " + extra)'"
        // Snapshot-then-restore: the same VM with a control socket, snapshotted once ready (the
        // workload has begun), stopped, and restored; L1's tmpfs holds the snapshot. With --net,
        // L1's peer runs across both: the restored guest's TCP connections carry on over the
        // tandem0 the restore makes again. With --vsock, vsockio's peers too: the restore resets
        // the guest's vsock connections (their host ends were the stopped VMM's), and vsockio
        // starts the transfer again on a new one; L1 keeps the last connection's bytes. So that
        // a connection is open at the snapshot, L1's sink is stopped (SIGSTOP) from before the
        // boot — once it listens: its socket file is there, and listen follows bind at once —
        // until the VM is gone: L2's send waits for credit (it cannot finish), and the snapshot
        // comes 2 s after ready, long after vsockio has connected.
        let snapshotRun = """
            snapshot_run() {
              rm -rf \(LabOptions.snapshotDirectory) \(LabOptions.controlSocket)
              \(options.vsock ? "until [ -S \(LabOptions.vsockPath)_5001 ]; do sleep 0.01; done; sleep 0.1; kill -STOP $vsock_receiver" : "")
              \(vmRun) --api-sock \(LabOptions.controlSocket) > /run/lab-snapshot-boot.log 2>&1 < /dev/null &
              vm=$!
              tries=0
              snapped=
              until /lab/tandem vm describe \(LabOptions.controlSocket) 2>/dev/null | grep -q '"ready": true'; do
                tries=$((tries + 1)); [ $tries -gt 12000 ] && echo "LAB-ERROR the snapshot boot never became ready" && break
                kill -0 $vm 2>/dev/null || break
                sleep 0.01
              done
              \(options.vsock ? "sleep 2" : "")
              if answer=$(/lab/tandem vm snapshot \(LabOptions.controlSocket) --out \(LabOptions.snapshotDirectory) --leave-paused 2>&1); then
                echo "LAB-SNAPSHOT $(echo "$answer" | tr -d ' \\n')"
                snapped=1
              elif ! kill -0 $vm 2>/dev/null; then
                echo "LAB-ERROR the snapshot boot ended before it could be snapshotted: its workload ended within moments of its ready line (hello does); --snapshot needs one that runs on, such as compute, blkio, netio or vsockio"
              else
                echo "LAB-ERROR the snapshot failed: $(echo "$answer" | tr '\\n' ' ')"
              fi
              kill $vm 2>/dev/null; wait $vm
              \(options.vsock ? "kill -CONT $vsock_receiver" : "")
              [ -n "$snapped" ] && /lab/lab-time tandem-restore /lab/tandem vm restore \(LabOptions.snapshotDirectory) --timeout \(Int(options.bootTimeoutSeconds)) --json < /dev/null
              rm -rf \(LabOptions.snapshotDirectory)
            }
            """
        // The server mode runs each boot through `serve` instead of netio's peer.
        let load = options.loadSeconds != nil
        let peer = options.net && !load
        return """
            #!/bin/sh
            # L1's init, written by `tandem lab nested`.
            mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
            \(loads)
            [ -c /dev/kvm ] || echo "LAB-ERROR no /dev/kvm in L1"
            echo "LAB-L1-READY $(cut -d' ' -f1 /proc/uptime)"
            run=1
            \(peer ? netPeer : "")
            \(load ? serverPeer(options) : "")
            \(options.vsock ? vsockPeer : "")
            \(options.snapshot ? snapshotRun : "")
            while [ $run -le \(options.runs) ]; do
              \(peer ? "peer_start" : "")
              \(options.vsock ? "vsock_start" : "")
              \(load ? "serve " : "")\(tandem) < /dev/null
              \(options.vsock ? "vsock_end" : "")
              \(peer ? "peer_end" : "")
              \(options.snapshot ? (peer ? "peer_start; " : "") + (options.vsock ? "vsock_start; " : "") + "snapshot_run"
                  + (options.vsock ? "; vsock_end" : "") + (peer ? "; peer_end" : "") : "")
            \(qemu ? "  " + (peer ? "peer_start; " : "") + (options.vsock ? "vsock_start_qemu; " : "") + (load ? "serve " : "") + qemuLine + " < /dev/null"
                + (options.vsock ? "; vsock_end" : "") + (peer ? "; peer_end" : "") + "\n" : "")  run=$((run + 1))
            done
            \(options.drives.indices.map { "echo \"LAB-DRIVE \($0) sha256=$(sha256sum /lab/drive\($0).img | cut -d' ' -f1)\"" }.joined(separator: "\n"))
            echo LAB-DONE
            poweroff -f

            """
    }
}
