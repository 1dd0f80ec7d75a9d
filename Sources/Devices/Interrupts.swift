/// An interrupt line a device can raise and lower (level-triggered, as the UART's). The VMM
/// connects it to KVM's irqchip (KVM_IRQ_LINE); devices never see KVM, and a machine without an
/// irqchip simply gives them a line that goes nowhere.
public protocol InterruptLine: AnyObject {
    func set(high: Bool)
}

/// A line that goes nowhere (machines without an interrupt controller, and tests).
public final class DisconnectedInterruptLine: InterruptLine {
    public init() {}
    public func set(high: Bool) {}
}

/// An edge-triggered interrupt: each `trigger()` delivers one edge. The VMM connects it to an
/// irqfd (an eventfd KVM turns into an interrupt), so any thread can raise it without an ioctl and
/// without a lock on the irqchip; this is how Firecracker signals its virtio-mmio devices.
public protocol InterruptTrigger: AnyObject, Sendable {
    func trigger()
}

/// A trigger that goes nowhere (a tiny guest polls; tests count their own).
public final class DisconnectedInterruptTrigger: InterruptTrigger {
    public init() {}
    public func trigger() {}
}
