// metrics.jsonl: one JSON object per line — a "run" record, then "step" and "eval" records (and
// "nonfinite", "truncation"), the Codable types of MetricsRecords.swift. Appended and flushed per
// record, so a killed run keeps everything up to its last step; a record with a NaN is written
// like any other (NaN as the string "NaN"), never dropped.

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
            // Records of steps the resumed run will redo are dropped; a line that does not parse
            // (a write the kill cut short) is dropped too.
            let kept = String(decoding: data, as: UTF8.self).split(separator: "\n").filter { line in
                switch try? MetricsRecord.decode(Data(line.utf8)) {
                case .step(let r): return r.step < step
                case .nonFinite(let r): return r.step < step
                case .eval(let r): return r.step <= step
                case .truncation(let r): return r.step <= step
                case .run, .other: return true
                case nil: return false
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

    /// Appends one record (and a newline). Throws only if the record cannot be encoded.
    public func append(_ record: MetricsRecord) throws {
        handle.write(try record.jsonLine() + Data("\n".utf8))
    }
}
