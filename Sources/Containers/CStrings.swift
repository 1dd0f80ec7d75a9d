#if canImport(Glibc)
import Glibc
#endif

/// C copies of Swift strings and arrays for the structures handed to CLinux (`clinux_container`,
/// `clinux_process`), alive until the arena is released. A child started with clone() gets its
/// own copy of the address space, so they only need to outlive the call that spawns it.
public final class CStrings {
    private var allocations: [UnsafeMutableRawPointer] = []

    public init() {}
    deinit { allocations.forEach { free($0) } }

    public func string(_ text: String) -> UnsafePointer<CChar> {
        let pointer = strdup(text)!
        allocations.append(UnsafeMutableRawPointer(pointer))
        return UnsafePointer(pointer)
    }

    /// A NULL-terminated `char *[]` (argv, envp).
    public func array(_ items: [String]) -> UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> {
        let array = buffer(of: UnsafeMutablePointer<CChar>?.self, count: items.count + 1)
        for (index, item) in items.enumerated() { array[index] = UnsafeMutablePointer(mutating: string(item)) }
        array[items.count] = nil
        return array
    }

    /// The same as `const char *const *` (path lists, pairs).
    public func constArray(_ items: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        UnsafeRawPointer(array(items)).assumingMemoryBound(to: UnsafePointer<CChar>?.self)
    }

    /// Uninitialised memory for `count` values of `T`, freed with the arena (plain C structs only).
    public func buffer<T>(of type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        let raw = malloc(max(1, count) * MemoryLayout<T>.stride)!
        allocations.append(raw)
        return raw.bindMemory(to: T.self, capacity: max(1, count))
    }

    public func copy<T>(_ items: [T]) -> UnsafeMutablePointer<T> {
        let pointer = buffer(of: T.self, count: items.count)
        for (index, item) in items.enumerated() { (pointer + index).initialize(to: item) }
        return pointer
    }
}
