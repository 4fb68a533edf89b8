// Errors the device layer throws: allocation, size mismatches, and backend failures.
// Every message names the problem and, where there is one, what to do about it.

public struct DeviceError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
