// `mpo-train dump`: a parity tool for people porting models between PyTorch and this project.
// Runs one forward + backward on a given batch and writes logits, loss and every gradient.

import ArgumentParser
import Foundation
import MPOKit
import SafeTensors

struct Dump: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write logits, loss and all gradients of a checkpoint on a given batch (for parity checks).",
        discussion: """
        BATCH.json is {"tokens": [[…]], "targets": [[…]]} with B rows of T token ids each.
        The output safetensors holds `logits` (B,T,V) float32, `loss` (1) and `grad.<parameter>`
        for every parameter. Dense or MPO is inferred from the checkpoint's tensor names and shapes.
        A Hugging Face directory (Llama or GPT-2) gets its gradients under its own tensor names
        (GPT-2: the fused attn.c_attn, Conv1D weights (in, out)), comparable with transformers'.

        Example: mpo-train dump --checkpoint Tests/Resources/reference/dense_seed2024.safetensors --heads 4 \\
                   --batch batch.json --out dump.safetensors
        """)

    @Option(help: "Model checkpoint (safetensors) or Hugging Face model directory.") var checkpoint: String
    @Option(help: "JSON file with \"tokens\" and \"targets\" (B×T token ids).") var batch: String
    @Option(help: "Output safetensors file.") var out: String
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        let device = try deviceOptions.make()
        let model = try loadCheckpoint(checkpoint, device: device, hints: shape.hints)
        let (tokens, targets, b, t) = try readBatch(batch)
        model.zeroGradients()
        let r = try model.forward(tokens: tokens, targets: targets, batch: b, time: t)
        try model.backward()
        var w = SafeTensorsWriter(metadata: ["source": "mpo-train dump", "checkpoint": checkpoint])
        try w.add("logits", shape: [b, t, model.config.vocabularySize], floats: try model.logits())
        try w.add("loss", shape: [1], floats: [Float(r.loss)])
        if HFCheckpoint.isModelDirectory(URL(fileURLWithPath: checkpoint)) {
            for g in try HFCheckpoint.exportTensors(config: model.config, value: { try model.gradient($0) }) {
                try w.add("grad.\(g.name)", shape: g.shape, floats: g.values)
            }
        } else {
            for spec in model.layout.specs {
                try w.add("grad.\(spec.name)", shape: spec.shape, floats: try model.gradient(spec.name))
            }
        }
        try w.write(to: URL(fileURLWithPath: out))
        print(String(format: "loss %.7f  accuracy %.4f  (%d×%d tokens, %d parameters, %@)",
                     r.loss, r.accuracy, b, t, model.parameterCount, device.name))
        print("wrote \(out)")
    }
}

/// Reads {"tokens": [[Int]], "targets": [[Int]]} into flat Int32 arrays.
func readBatch(_ path: String) throws -> ([Int32], [Int32], Int, Int) {
    let data: Data
    do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw ModelError("cannot read batch file \(path): \(error.localizedDescription)")
    }
    guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let tok = obj["tokens"] as? [[Int]], let tgt = obj["targets"] as? [[Int]] else {
        throw ModelError("\(path) must be JSON {\"tokens\": [[…]], \"targets\": [[…]]} with integer token ids")
    }
    let b = tok.count, t = tok.first?.count ?? 0
    guard b > 0, t > 0, tok.allSatisfy({ $0.count == t }), tgt.count == b, tgt.allSatisfy({ $0.count == t }) else {
        throw ModelError("\(path): tokens and targets must both be B×T with equal row lengths (got \(b) rows)")
    }
    return (tok.flatMap { $0.map(Int32.init) }, tgt.flatMap { $0.map(Int32.init) }, b, t)
}
