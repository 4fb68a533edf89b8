// metrics.jsonl: one JSON object per line — a "run" record, then "step" and "eval" records.
// Appended and flushed per record, so a killed run keeps everything up to its last step.

import Foundation

public final class MetricsLog {
    public let url: URL
    private let handle: FileHandle

    /// Opens (creating) the log. With `keepThrough`, existing records past that step are dropped
    /// first (on resume: steps < step, evaluations ≤ step), rewriting the file atomically.
    public init(url: URL, keepThrough step: Int? = nil) throws {
        self.url = url
        let fm = FileManager.default
        if let step, let data = try? Data(contentsOf: url) {
            let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
                guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return false }
                let s = obj["step"] as? Int ?? -1
                switch obj["type"] as? String {
                case "step": return s < step
                case "eval": return s <= step
                default: return true
                }
            }
            let tmp = url.appendingPathExtension("tmp")
            try Data((kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).utf8).write(to: tmp)
            guard rename(tmp.path, url.path) == 0 else {
                throw ModelError("cannot replace \(url.path) (errno \(errno)); is the output directory writable?")
            }
        } else if step == nil || !fm.fileExists(atPath: url.path) {
            guard fm.createFile(atPath: url.path, contents: nil) else {
                throw ModelError("cannot create \(url.path): is the output directory writable?")
            }
        }
        handle = try FileHandle(forWritingTo: url)
        handle.seekToEndOfFile()
    }

    deinit { try? handle.close() }

    public func append(_ record: [String: Any]) {
        guard let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
        handle.write(data + Data("\n".utf8))
    }
}
