import BootLoader
import CKVM
import Devices
import GuestMemory
import HostOS
import KVM
import Virtio
#if canImport(Glibc)
import Glibc
#endif

/// What a snapshot wrote, for the control socket's answer and `tandem bench --snapshot`.
public struct SnapshotSummary: Sendable {
    public var directory: String
    /// The memory file's size (the guest's RAM) and the disk it takes: only the pages the guest
    /// touched and did not leave zero are written, the rest are holes.
    public var memoryBytes: UInt64
    public var memoryAllocatedBytes: UInt64
    public var stateBytes: UInt64
    public var nanoseconds: UInt64
    /// The disks the guest had: a restore opens the same files, so a read-write one must be
    /// copied with the snapshot (and the copy put back) before the VM it was taken from, or
    /// another restore, writes to it again.
    public var drives: [SnapshotState.Drive] = []
    /// The taps the guest's interfaces were bound to: a restore binds to the same names.
    public var nets: [SnapshotState.Net] = []
    /// The vsock's socket: a restore listens there again.
    public var vsock: SnapshotState.Vsock?

    public var json: JSON {
        .object([("directory", .string(directory)), ("memory_bytes", .uint(memoryBytes)),
                 ("memory_allocated_bytes", .uint(memoryAllocatedBytes)), ("state_bytes", .uint(stateBytes)),
                 ("snapshot_ms", .double(Double(nanoseconds) / 1e6)),
                 ("disks", .array(drives.map { drive in
                     .object([("path", .string(drive.path)), ("read_only", .bool(drive.readOnly)),
                              ("note", .string(drive.readOnly ? "restored from the same file; it must not change"
                                  : "read-write: the snapshot is only whole with this disk as it is now — copy it with the snapshot before the VM, or a restore, writes to it again"))])
                 })),
                 ("interfaces", .array(nets.map { net in
                     .object([("tap", .string(net.name)), ("mac", .string(net.macText)),
                              ("note", .string(Self.restoreNote(net)))] + (net.origin == .bridge ? [("address", .string(net.address))] : []))
                 }))] + (vsock.map { vsock in
                     [("vsock", .object([("path", .string(vsock.path)), ("guest_cid", .uint(vsock.guestCID)),
                                         ("note", .string("a restore listens at \(vsock.path) again once the VM this was taken from has ended; the guest's connections are reset"))]))]
                 } ?? []))
    }
}

extension SnapshotSummary {
    /// What a restore does with the interface's tap.
    static func restoreNote(_ net: SnapshotState.Net) -> String {
        switch net.origin {
        case .tandem: "a restore makes \(net.name) again with the same addresses: the VM this was taken from must have ended"
        case .user: "a restore binds to the tap \(net.name) again: the network around it is yours to keep"
        case .bridge: "a restore leases \(net.address) on Tandem's bridge again: the VM this was taken from must have ended"
        }
    }
}

/// A snapshot directory's two files.
public enum SnapshotFiles {
    public static let state = "state"
    public static let memory = "memory"
    /// The largest state file read (a tiny guest's is ~10 KiB; a hostile one must not fill memory).
    static let maximumStateBytes = 16 << 20
}

extension Machine {
    // Every machine can be snapshotted: tiny and Linux guests with their disks (virtio-blk: the
    // transport's and queues' state; the disk is its file, named in the snapshot), their taps
    // (virtio-net: the transport's state, the tap's name and origin and the MAC, and on Tandem's
    // bridge the guest's address, which the restore leases again; a frame in flight is lost, as
    // on a wire) and their vsock (its path and CID; its connections are reset on restore, as
    // Firecracker's).

    /// The devices whose state a snapshot carries, by their bus names: the port devices, then the
    /// virtio-mmio transports.
    var snapshotDevices: [(name: String, device: any SnapshotDevice)] {
        (portBus.entries + mmioBus.entries).compactMap { entry in (entry.device as? any SnapshotDevice).map { (entry.name, $0) } }
    }

    /// The virtio transports, for holding their device work still while a snapshot is taken.
    var transports: [MMIOTransport] { mmioBus.entries.compactMap { $0.device as? MMIOTransport } }

    /// Runs `body` with every transport `quiesced` (no device work on the queues or in guest RAM).
    func withDevicesQuiesced<T>(_ remaining: ArraySlice<MMIOTransport>? = nil, _ body: () throws -> T) rethrows -> T {
        let remaining = remaining ?? transports[...]
        guard let first = remaining.first else { return try body() }
        return try first.quiesced { try withDevicesQuiesced(remaining.dropFirst(), body) }
    }

    /// Writes the paused VM to `directory` (made if missing): `memory`, the guest RAM, sparse;
    /// `state`, every vCPU's KVM state, the VM's clock and the devices' state
    /// (`SnapshotState`). Each file is written under a temporary name and renamed into place, so
    /// a failure leaves the directory as it was.
    func writeSnapshot(to directory: String) throws(MicroVMError) -> SnapshotSummary {
        let started = Clock.monotonicNanoseconds()
        guard stop.isPaused(vcpuCount: vcpus.count) else { throw .snapshot(path: directory, problem: "the VM is not paused (pause it first)") }
        if Files.kind(directory) == .missing, mkdir(directory, 0o700) != 0 { throw .system(SystemError("mkdir", directory)) }
        guard Files.kind(directory) == .directory else { throw .snapshot(path: directory, problem: "is not a directory") }

        // The device thread holds still from the capture until guest RAM is written.
        let written: Result<SnapshotSummary, MicroVMError> = withDevicesQuiesced {
            Result { () throws(MicroVMError) in try writeQuiescedSnapshot(to: directory, started: started) }
        }
        return try written.get()
    }

    private func writeQuiescedSnapshot(to directory: String, started: UInt64) throws(MicroVMError) -> SnapshotSummary {
        let state: SnapshotState
        do { state = try captureState() } catch { throw .kvm(error) }
        let encoded = state.encode()
        let memoryPath = directory + "/" + SnapshotFiles.memory, statePath = directory + "/" + SnapshotFiles.state
        let memoryTemporary = memoryPath + ".partial", stateTemporary = statePath + ".partial"
        var renamed = false
        defer {
            if !renamed {
                unlink(memoryTemporary)
                unlink(stateTemporary)
            }
        }
        do throws(SystemError) {
            let allocated = try writeMemory(to: memoryTemporary)
            let stateFile = try FileDescriptor.open(stateTemporary, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
            try stateFile.writeAll(encoded)
            guard fsync(stateFile.rawValue) == 0 else { throw SystemError("fsync", stateTemporary) }
            guard rename(memoryTemporary, memoryPath) == 0 else { throw SystemError("rename", "\(memoryTemporary) to \(memoryPath)") }
            guard rename(stateTemporary, statePath) == 0 else { throw SystemError("rename", "\(stateTemporary) to \(statePath)") }
            renamed = true
            return SnapshotSummary(directory: directory, memoryBytes: UInt64(memory.size), memoryAllocatedBytes: allocated,
                                   stateBytes: UInt64(encoded.count), nanoseconds: Clock.monotonicNanoseconds() - started,
                                   drives: state.machine.drives, nets: state.machine.nets, vsock: state.machine.vsock)
        } catch {
            throw .system(error)
        }
    }

    /// The state file's contents, read from KVM and the devices while every vCPU is parked.
    func captureState() throws(KVMError) -> SnapshotState {
        let system = vm.system
        let msrIndices = try system.msrIndexList()
        let xsaveSize = system.xsaveSize()
        var records: [SnapshotState.VCPURecord] = []
        for vcpu in vcpus {
            var blobs: [SnapshotState.Blob] = []
            for kind in KVMStateKind.vcpuKinds(withLAPIC: config.isLinux) {
                blobs.append(SnapshotState.Blob(kind: kind.rawValue, bytes: try vcpu.state(kind)))
            }
            records.append(SnapshotState.VCPURecord(
                id: UInt32(vcpu.id), blobs: blobs, xsave: try vcpu.xsave(size: xsaveSize),
                msrs: try vcpu.msrs(msrIndices).map { SnapshotState.MSR(index: $0.index, value: $0.value) },
                cpuid: try vcpu.cpuidBytes()))
        }
        var vmBlobs: [SnapshotState.Blob] = []
        for kind in KVMStateKind.vmKinds(withIRQChip: config.isLinux) {
            vmBlobs.append(SnapshotState.Blob(kind: kind.rawValue, bytes: try vm.state(kind)))
        }
        var machine: SnapshotState.MachineRecord
        let ranges = memory.regions.map { SnapshotState.RAMRange(start: $0.start.value, size: UInt64($0.size)) }
        switch config.boot {
        case .flat(_, let name, _, _):
            machine = SnapshotState.MachineRecord(kind: 0, guest: name, memoryMiB: UInt32(config.memoryMiB), ranges: ranges)
        case .linux(let kernel, _, let commandLine):
            machine = SnapshotState.MachineRecord(kind: 1, guest: kernel.name, commandLine: commandLine, memoryMiB: UInt32(config.memoryMiB), ranges: ranges)
        }
        machine.drives = config.drives.map { SnapshotState.Drive(path: Files.absolute($0.path), readOnly: $0.readOnly) }
        machine.vsock = config.vsock.map { SnapshotState.Vsock(path: Files.absolute($0.path), guestCID: $0.guestCID) }
        machine.nets = config.nets.map { net in
            switch net.tap.origin {
            case .tandem: SnapshotState.Net(origin: .tandem, name: net.tap.name, mac: net.mac)
            case .user: SnapshotState.Net(origin: .user, name: net.tap.name, mac: net.mac)
            case .bridge: SnapshotState.Net(origin: .bridge, name: net.tap.name, mac: net.mac, address: net.tap.guestAddress ?? "")
            }
        }
        return SnapshotState(machine: machine, host: Machine.hostRecord(system), vcpus: records, vmBlobs: vmBlobs,
                             devices: snapshotDevices.map { SnapshotState.DeviceRecord(name: $0.name, bytes: $0.device.savedState()) })
    }

    /// The guest RAM, range after range, as a sparse file: only resident pages (mincore) that are
    /// not all zero are written. Returns the bytes the file occupies on disk.
    private func writeMemory(to path: String) throws(SystemError) -> UInt64 {
        let file = try FileDescriptor.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode: 0o600)
        guard ftruncate(file.rawValue, off_t(memory.size)) == 0 else { throw SystemError("ftruncate", "\(path), \(memory.size) bytes") }
        let page = GuestMemory.pageSize
        var fileOffset = 0
        for region in memory.regions {
            var resident = [UInt8](repeating: 0, count: (region.size + page - 1) / page)
            guard mincore(region.host, region.size, &resident) == 0 else { throw SystemError("mincore", "guest RAM at \(region.start)") }
            for (index, flags) in resident.enumerated() where flags & 1 != 0 {
                let bytes = UnsafeRawBufferPointer(start: region.host + index * page, count: page)
                if bytes.allSatisfy({ $0 == 0 }) { continue }
                try file.writeAll(bytes, at: fileOffset + index * page)
            }
            fileOffset += region.size
        }
        guard fsync(file.rawValue) == 0 else { throw SystemError("fsync", path) }
        var info = stat()
        guard fstat(file.rawValue, &info) == 0 else { throw SystemError("fstat", path) }
        return UInt64(info.st_blocks) * 512
    }

    /// This host's CPU as a snapshot records it: the CPUID instruction's vendor and feature
    /// leaves (not KVM_GET_SUPPORTED_CPUID: 0.3 ms here, on every restore's critical path), and
    /// KVM's XSAVE area size.
    static func hostRecord(_ system: KVMSystem) -> SnapshotState.HostRecord {
        func leaf(_ function: UInt32) -> [UInt32] {
            var registers: [UInt32] = [0, 0, 0, 0]
            registers.withUnsafeMutableBufferPointer { ckvm_host_cpuid(function, 0, $0.baseAddress) }
            return registers
        }
        let zero = leaf(0), one = leaf(1), seven = zero[0] >= 7 ? leaf(7) : [0, 0, 0, 0]
        var vendor: [UInt8] = []
        for word in [zero[1], zero[3], zero[2]] { withUnsafeBytes(of: word.littleEndian) { vendor += $0 } }
        return SnapshotState.HostRecord(vendor: String(decoding: vendor, as: UTF8.self),
                                        features: [one[2], one[3], seven[1], seven[2], seven[3]],
                                        xsaveBytes: UInt32(system.xsaveSize()))
    }

    /// Why a snapshot taken on `saved` cannot run on `host`, or nil.
    static func hostMismatch(saved: SnapshotState.HostRecord, host: SnapshotState.HostRecord) -> String? {
        if saved.vendor != host.vendor { return "it was taken on a \(saved.vendor) CPU, this host's is \(host.vendor)" }
        if saved.xsaveBytes != host.xsaveBytes {
            return "its XSAVE area is \(saved.xsaveBytes) bytes, this host's KVM uses \(host.xsaveBytes) (a CPU with other features)"
        }
        for (index, word) in saved.features.enumerated() where index < host.features.count {
            let missing = word & ~host.features[index]
            if missing != 0 {
                return "the CPU it was taken on had features this host lacks: \(SnapshotState.HostRecord.featureNames[index]) bits 0x\(String(missing, radix: 16))"
            }
        }
        return nil
    }

    /// Brings back the VM `directory` holds, ready to `run` from where it was paused. Everything
    /// in the directory is checked first — the state file's magic, version and CRC, its records
    /// against this build and this host's CPU, the memory file's size against the RAM claimed —
    /// and any problem is an error naming the file, before a VM exists or guest code runs. The
    /// memory file is mapped copy-on-write: it is never written, so one snapshot restores any
    /// number of independent guests.
    /// `openBridgeTap` opens a tap on Tandem's bridge with the guest's address leased again (the
    /// bridge is the containers' network, which the launcher owns); without it a snapshot of a VM
    /// on the bridge is refused.
    public static func restore(from directory: String, console: FileConsoleSink, timeoutNanoseconds: UInt64? = nil,
                               controlSocket: UnixListener? = nil, processStart: UInt64? = nil,
                               kvmPath: String = KVMSystem.defaultPath,
                               openBridgeTap: ((_ name: String, _ address: String) throws -> Tap)? = nil) throws(MicroVMError) -> Machine {
        var phases = PhaseTimes(processStart: processStart)
        let statePath = directory + "/" + SnapshotFiles.state, memoryPath = directory + "/" + SnapshotFiles.memory
        func refuse(_ path: String, _ problem: String) -> MicroVMError { .snapshot(path: path, problem: problem) }
        guard Files.kind(directory) == .directory else {
            throw refuse(directory, Files.kind(directory) == .missing ? "does not exist" : "is not a snapshot directory")
        }
        guard Files.kind(statePath) == .regular else { throw refuse(statePath, "is missing or not a regular file") }
        let state: SnapshotState
        do {
            state = try SnapshotState.decode(try Files.read(statePath, limit: SnapshotFiles.maximumStateBytes))
        } catch let error as SnapshotFormatError {
            throw refuse(statePath, error.description)
        } catch {
            throw refuse(statePath, "\(error)")
        }
        let machine = state.machine
        let memoryMiB = Int(machine.memoryMiB)
        let isLinux = machine.kind == 1
        var config = VMConfig(boot: isLinux ? .linux(kernel: InMemoryImage([], name: machine.guest), initrd: nil, commandLine: machine.commandLine)
                                            : .flat(image: [], name: machine.guest, mode: .long, argument: 0),
                              memoryMiB: memoryMiB, vcpus: state.vcpus.count, timeoutNanoseconds: timeoutNanoseconds)
        config.drives = machine.drives.map { VMConfig.Drive(path: $0.path, readOnly: $0.readOnly) }
        for drive in machine.drives where Files.kind(drive.path) != .regular {
            throw refuse(statePath, "its disk \(drive.path) is \(Files.kind(drive.path) == .missing ? "missing" : "not a regular file") (a restore opens the disks the VM had)")
        }
        guard machine.nets.isEmpty || getuid() == 0 else { throw refuse(statePath, "its network interfaces need root (a restore binds to their taps again)") }
        do { _ = try validatedMemory(config) } catch { throw refuse(statePath, error.description) }
        let ranges = ramRanges(memoryMiB << 20)
        guard machine.ranges.map({ [$0.start, $0.size] }) == ranges.map({ [$0.start.value, UInt64($0.size)] }) else {
            throw refuse(statePath, "its RAM ranges are not the layout Tandem gives a \(memoryMiB) MiB guest")
        }
        let vcpuKinds = KVMStateKind.vcpuKinds(withLAPIC: isLinux)
        for record in state.vcpus {
            guard record.blobs.map(\.kind) == vcpuKinds.map(\.rawValue) else {
                throw refuse(statePath, "vCPU \(record.id) holds KVM state kinds \(record.blobs.map(\.kind)), this Tandem expects \(vcpuKinds.map(\.rawValue))")
            }
            for (blob, kind) in zip(record.blobs, vcpuKinds) where blob.bytes.count != kind.size {
                throw refuse(statePath, "vCPU \(record.id) \(kind.name) state is \(blob.bytes.count) bytes, this host's structure has \(kind.size)")
            }
            guard record.cpuid.count % MemoryLayout<kvm_cpuid_entry2>.stride == 0 else {
                throw refuse(statePath, "vCPU \(record.id) CPUID is \(record.cpuid.count) bytes, not whole entries")
            }
        }
        let vmKinds = KVMStateKind.vmKinds(withIRQChip: isLinux)
        guard state.vmBlobs.map(\.kind) == vmKinds.map(\.rawValue) else { throw refuse(statePath, "its VM state kinds \(state.vmBlobs.map(\.kind)) are not \(vmKinds.map(\.rawValue))") }
        for (blob, kind) in zip(state.vmBlobs, vmKinds) where blob.bytes.count != kind.size {
            throw refuse(statePath, "VM \(kind.name) state is \(blob.bytes.count) bytes, this host's structure has \(kind.size)")
        }

        let memoryFile: FileDescriptor
        do { memoryFile = try FileDescriptor.open(memoryPath, O_RDONLY | O_NOFOLLOW) } catch { throw refuse(memoryPath, "cannot be opened: \(error)") }
        var info = stat()
        guard fstat(memoryFile.rawValue, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw refuse(memoryPath, "is not a regular file") }
        guard UInt64(info.st_size) >= machine.memoryBytes else {
            throw refuse(memoryPath, "is \(info.st_size) bytes, shorter than the \(machine.memoryBytes) bytes of guest RAM the state claims")
        }

        do {
            let system = try KVMSystem(path: kvmPath)
            if let mismatch = hostMismatch(saved: state.host, host: hostRecord(system)) { throw refuse(statePath, mismatch) }
            // Last of the checks: a tap is made here (and goes with the error).
            for net in machine.nets {
                do {
                    let tap: Tap
                    switch net.origin {
                    case .tandem: tap = try Tap.reopen(tandemIndex: SnapshotState.Net.tandemIndex(net.name)!)
                    case .user: tap = try Tap.open(name: net.name)
                    case .bridge:
                        guard let openBridgeTap else { throw SystemError("--net bridge", "\(net.address): Tandem's bridge is not reachable from here", errno: ENOTSUP) }
                        tap = try openBridgeTap(net.name, net.address)
                    }
                    config.nets.append(VMConfig.Net(tap: tap, mac: net.mac))
                } catch {
                    throw refuse(statePath, "its interface on tap \(net.name): \(error)")
                }
            }
            if let vsock = machine.vsock {
                do { config.vsock = try VirtioVsock(path: vsock.path, guestCID: vsock.guestCID) } catch {
                    throw refuse(statePath, "its vsock at \(vsock.path): \(error)")
                }
            }
            guard state.vcpus.allSatisfy({ $0.xsave.count == system.xsaveSize() }) else {
                throw refuse(statePath, "its XSAVE area is \(state.vcpus[0].xsave.count) bytes, this host's KVM uses \(system.xsaveSize())")
            }
            let memory = try GuestMemory(ranges: ranges, file: memoryFile)
            let vm = try system.createVM()
            try vm.setTSSAddress(tssAddress)
            for region in memory.regions {
                try vm.mapMemory(guestAddress: region.start.value, size: region.size, host: region.host)
            }
            // As `build` does: the interrupt controllers before any vCPU.
            if isLinux {
                try vm.createIRQChip()
                try vm.createPIT()
            }
            var vcpus: [VCPU] = []
            for id in 0..<state.vcpus.count { vcpus.append(try vm.createVCPU(id: id)) }
            phases.vmCreated = Clock.monotonicNanoseconds()
            config.controlSocket = controlSocket
            let restored = Machine(config: config, vm: vm, memory: memory, vcpus: vcpus, console: console, stop: try StopState(), phases: phases)
            restored.restoredFrom = directory
            try restored.attachDevices()
            let devices = restored.snapshotDevices
            guard state.devices.map(\.name) == devices.map(\.name) else {
                throw refuse(statePath, "its devices \(state.devices.map(\.name)) are not this guest's (\(devices.map(\.name)))")
            }
            for (record, device) in zip(state.devices, devices) {
                do { try device.device.restoreState(record.bytes) } catch { throw refuse(statePath, error.description) }
            }
            try restored.apply(state)
            // Requests the driver queued that the device had not taken yet: their interrupts
            // wait in the irqchip.
            for transport in restored.transports { transport.serveQueuedAfterRestore() }
            // The guest's vsock connections ended with the old VMM: the driver is told to reset them.
            restored.config.vsock?.announceTransportReset()
            restored.phases.imageLoaded = Clock.monotonicNanoseconds()
            restored.phases.imageComplete = restored.phases.imageLoaded
            return restored
        } catch let error as MicroVMError {
            throw error
        } catch let error as KVMError {
            throw .kvm(error)
        } catch let error as GuestMemoryError {
            throw .memory(error)
        } catch let error as SystemError {
            throw .system(error)
        } catch {
            throw .system(SystemError("restore", "\(error)", errno: EINVAL))
        }
    }

    /// Terminal input for a restored guest's console (set before `run`).
    public func setConsoleInput(_ fd: Int32) { config.consoleInput = fd }

    /// The saved MSRs whose values differ from what the fresh `vcpu` has: only those are set.
    /// (KVM reports some it cannot take back on this VM — the paravirtual async page fault MSRs
    /// need an in-kernel LAPIC even to be written with 0 — and a value equal to the reset value
    /// needs no writing.)
    static func changedMSRs(_ saved: [SnapshotState.MSR], on vcpu: VCPU) throws(KVMError) -> [(index: UInt32, value: UInt64)] {
        let fresh = try vcpu.msrs(saved.map(\.index))
        var changed: [(index: UInt32, value: UInt64)] = []
        var position = 0
        for msr in saved {
            // `fresh` is in the saved order, without the ones KVM would not read on this vCPU.
            if position < fresh.count, fresh[position].index == msr.index {
                if fresh[position].value != msr.value { changed.append((msr.index, msr.value)) }
                position += 1
            } else {
                changed.append((msr.index, msr.value))
            }
        }
        return changed
    }

    static let amdVendor = "AuthenticAMD"

    /// `sregs` with TR's type "available 64-bit TSS" (9) instead of "busy" (11). KVM on AMD sets
    /// the busy bit when it reports TR (svm_get_segment: the hardware's hidden TR may not hold
    /// it), and QEMU's emulated SVM — the nested lab's L1 — checks a user program's port access
    /// against the TSS's I/O bitmap only when TR's type is 9: restored busy, tandem-init's `out`
    /// to the EXIT port took a #GP there. On AMD hardware VMRUN does not check TR's type, so this
    /// is what the CPU itself held. (Intel's VM entry requires 11: only AMD snapshots get this.)
    static func availableTR(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count == MemoryLayout<kvm_sregs>.size else { return bytes }
        var sregs = bytes.withUnsafeBytes { $0.loadUnaligned(as: kvm_sregs.self) }
        if sregs.tr.type == 11 { sregs.tr.type = 9 }
        return withUnsafeBytes(of: sregs) { Array($0) }
    }

    /// Puts the saved KVM state back, in Firecracker's order: the VM's (PIT, PICs, IOAPIC, clock),
    /// then per vCPU CPUID, MSRs, registers, special registers, XSAVE, then the rest (XCRs, debug
    /// registers, LAPIC, MP state, pending events).
    private func apply(_ state: SnapshotState) throws(KVMError) {
        for blob in state.vmBlobs { try vm.setState(KVMStateKind(rawValue: blob.kind)!, blob.bytes) }
        for (vcpu, record) in zip(vcpus, state.vcpus) {
            if !record.cpuid.isEmpty { try vcpu.setCPUID(bytes: record.cpuid) }
            try vcpu.setMSRs(try Machine.changedMSRs(record.msrs, on: vcpu))
            for blob in record.blobs.prefix(2) {
                let kind = KVMStateKind(rawValue: blob.kind)!
                try vcpu.setState(kind, kind == .specialRegisters && state.host.vendor == Machine.amdVendor ? Machine.availableTR(blob.bytes) : blob.bytes)
            }
            try vcpu.setXSAVE(record.xsave)
            for blob in record.blobs.dropFirst(2) { try vcpu.setState(KVMStateKind(rawValue: blob.kind)!, blob.bytes) }
        }
    }
}
