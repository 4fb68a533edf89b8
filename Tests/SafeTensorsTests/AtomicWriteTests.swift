// AtomicWriteTests.swift — SafeTensorsWriter.write(to:) against the real file system: a file
// written and read back, an existing file replaced, failures (missing directory, unwritable
// target) that throw a message naming the path and leave no "<path>.tmp-<pid>" file behind.
// Each test uses its own temporary directory; nothing here tests the format itself.

import Foundation
import Testing
@testable import SafeTensors

@Suite struct AtomicWriteTests {
    static var pid: Int32 { ProcessInfo.processInfo.processIdentifier }

    static func writer(_ value: Float, count: Int) throws -> SafeTensorsWriter {
        var w = SafeTensorsWriter(metadata: ["value": "\(value)"])
        try w.add("t", shape: [count], floats: Array(repeating: value, count: count))
        return w
    }

    static func leftovers(in dir: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
    }

    @Test("a mapped file's tensors read the same after their pages are released; a file parsed from memory keeps its bytes")
    func releaseKeepsValues() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("big.safetensors")
        var w = SafeTensorsWriter(metadata: [:])
        let a = (0..<300_000).map { Float($0) * 0.5 }, b = (0..<70_000).map { -Float($0) }   // several pages each
        try w.add("a", shape: [a.count], floats: a)
        try w.add("b", shape: [b.count], floats: b)
        try w.write(to: url)
        for f in [try SafeTensorsFile(contentsOf: url), try SafeTensorsFile(data: w.serialized())] {
            #expect(try f.floats("a") == a)
            f.release("a"); f.release("b")
            #expect(try f.floats("a") == a)
            #expect(try f.floats("b") == b)
        }
    }

    @Test func writeThenReadBack() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("model.safetensors")
        let w = try Self.writer(1.5, count: 10)
        try w.write(to: url)
        #expect(try Data(contentsOf: url) == w.serialized())
        let f = try SafeTensorsFile(contentsOf: url)
        #expect(try f.floats("t") == Array(repeating: 1.5, count: 10))
        #expect(f.metadata == ["value": "1.5"])
        #expect(try Self.leftovers(in: dir).isEmpty)
    }

    @Test func overwritingReplacesTheFile() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try Self.writer(1, count: 1000).write(to: url)
        let smaller = try Self.writer(2, count: 3)
        try smaller.write(to: url)
        #expect(try Data(contentsOf: url) == smaller.serialized())
        let f = try SafeTensorsFile(contentsOf: url)
        #expect(try f.floats("t") == [2, 2, 2])
        #expect(try Self.leftovers(in: dir).isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["ckpt.safetensors"])
    }

    @Test func missingDirectoryThrowsWithPathAndLeavesNoTempFile() throws {
        let parent = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: parent) }
        let missingDir = parent.appendingPathComponent("does-not-exist")
        let url = missingDir.appendingPathComponent("model.safetensors")
        let message = expectError(mentioning: [url.path, "directory exists"]) { try Self.writer(1, count: 4).write(to: url) }
        #expect(message.contains("No such file or directory"))
        #expect(!FileManager.default.fileExists(atPath: url.path))
        #expect(!FileManager.default.fileExists(atPath: url.path + ".tmp-\(Self.pid)"))
        #expect(!FileManager.default.fileExists(atPath: missingDir.path))
        #expect(try Self.leftovers(in: parent).isEmpty)
    }

    @Test func renameFailureRemovesTempFile() throws {
        // The target is a non-empty directory: the temp file is written, rename(2) fails, and the
        // temp file must be cleaned up.
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let target = dir.appendingPathComponent("occupied")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try Data([1]).write(to: target.appendingPathComponent("keep"))
        expectError(mentioning: [target.path, "renaming"]) { try Self.writer(1, count: 4).write(to: target) }
        #expect(try Self.leftovers(in: dir).isEmpty)
        #expect(FileManager.default.fileExists(atPath: target.appendingPathComponent("keep").path))
    }

    /// Directory permissions do not stop root (CI runs as root), so this one runs only for other users.
    @Test(.enabled(if: getuid() != 0, "root ignores directory permissions; unwritableParentThrowsWithPath covers root"))
    func unwritableDirectoryThrowsWithPath() throws {
        let dir = try makeTempDirectory()
        defer {
            try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
            try? FileManager.default.removeItem(at: dir)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o555], ofItemAtPath: dir.path)
        let url = dir.appendingPathComponent("model.safetensors")
        expectError(mentioning: [url.path, "writable"]) { try Self.writer(1, count: 4).write(to: url) }
        try? FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
        #expect(try Self.leftovers(in: dir).isEmpty)
    }

    /// A "directory" that is a regular file cannot hold the temporary file, even for root.
    @Test func unwritableParentThrowsWithPath() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("not-a-directory")
        try Data([1, 2, 3]).write(to: file)
        let url = file.appendingPathComponent("model.safetensors")
        expectError(mentioning: [url.path, "writable"]) { try Self.writer(1, count: 4).write(to: url) }
        #expect(try Data(contentsOf: file) == Data([1, 2, 3]))
        #expect(try Self.leftovers(in: dir).isEmpty)
    }

    @Test func staleTempFileFromSamePidIsReplaced() throws {
        let dir = try makeTempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.safetensors")
        try Data("garbage".utf8).write(to: URL(fileURLWithPath: url.path + ".tmp-\(Self.pid)"))
        try Self.writer(4, count: 2).write(to: url)
        #expect(try SafeTensorsFile(contentsOf: url).floats("t") == [4, 4])
        #expect(try Self.leftovers(in: dir).isEmpty)
    }
}
