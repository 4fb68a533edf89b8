// `mpo-train compress`: TT-SVD a trained dense model into an MPO model (docs/SPEC.md §4), keeping its
// embedding, LayerNorms and biases, and show what it costs in validation loss. With --embedding
// the token embedding is TT-SVD'd too (per-token tensor trains or one table MPO, docs/SPEC.md §5).

import ArgumentParser
import Foundation
import MPOKit

struct Compress: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compress a trained checkpoint into MPO layers of bond dimension χ and/or a TT embedding.",
        discussion: """
        With --chi every linear layer is TT-SVD'd; with --embedding tt:R (or mpo:χ, svd:r) the token
        embedding is TT-SVD'd row by row into per-token tensor trains (or as one MPO). Everything
        else (LayerNorms, biases, and the embedding without --embedding) is copied unchanged.
        Prints per-layer errors and the validation loss/accuracy before and after, on the same
        batches. Fine-tune the result with `mpo-train train --init OUT`.

        With --calibration TEXT the layers are truncated by their output error on the original
        model's activations over TEXT (SVD-LLM's whitening: the TT-SVD of W·S with S the Cholesky
        factor of the inputs' second moment — for an MPO its Kronecker approximation over the
        input factors — S⁻¹ folded into the cores, then the cores fitted to the exact output error
        by --als-sweeps of alternating least squares), and the budget is allocated on those
        errors; the per-layer errors printed are then output errors. A tied embedding compressed
        with --embedding mpo:χ or svd:r is truncated the same way as the head it also is.

        With --params N (or --ratio R) instead of --chi, every layer gets its own χ so that the
        whole model has at most N parameters (dense/R): greedy on the layers' TT-SVD errors per
        added parameter, each layer's error weighted by its measured sensitivity with
        --sensitivity K (K validation batches per layer).

        Examples:
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --chi 16 --out runs/dense-chi16.safetensors
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --params 79168 --sensitivity 4 --out runs/dense-79k.safetensors
          mpo-train compress --checkpoint runs/dense/checkpoint.safetensors --embedding tt:4 --out runs/dense-tt4.safetensors
        """)

    @Option(help: "Trained dense checkpoint.") var checkpoint: String
    @Option(help: "Bond dimension χ of the linear layers (omit to keep them as they are).") var chi: Int?
    @Option(help: "Parameter budget of the whole model: a χ per layer, chosen greedily from the layers' TT-SVD errors.") var params: Int?
    @Option(help: "Compression ratio of the whole model: --params = dense parameters / R.") var ratio: Double?
    @Option(name: .customLong("linear-ratio"), help: "Compression ratio of the linear layers alone (an LLM's embedding stays): their cores get 1/R of their dense parameters.")
    var linearRatio: Double?
    @Option(help: ArgumentHelp("Sites of every linear layer's MPO: 2, 3 or 4 (the chooser's cheapest factorisation with that many sites), or svd (plain truncated SVD, W ≈ U·Vᵀ). Default: the chooser's (2 or 3).", valueName: "n|svd"))
    var sites: String?
    @Option(help: ArgumentHelp("How the budget's χ per layer is found: spectra (one SVD per unfolding, the TT-SVD bound; exact for two sites — seconds for an LLM), ttsvd (a TT-SVD per candidate χ) or, with --calibration, measured (the whitened spectra, each MPO layer's errors rescaled by how far its exact output error after --als-sweeps lies from the Kronecker spectrum's at the bonds the spectra give it: one more compression). Default: ttsvd below 4M linear parameters, else spectra.", valueName: "spectra|ttsvd|measured"))
    var allocation: String?
    @Option(help: ArgumentHelp("With --allocation spectra: max levels the layers' relative errors (grow the worst layer), sum removes the most error² per parameter (BondAllocator's rule).", valueName: "max|sum"))
    var objective: String = "max"
    @Option(name: .customLong("eval-context"), help: "Window of the validation numbers (default: the model's context, at most 512).")
    var evalContext: Int?
    @Option(help: "Weigh each layer by its measured sensitivity: the loss increase over this many validation batches when it alone is compressed, per unit of its relative error² (with --params/--ratio; with --calibration it is compressed whitened and its error is its output error).")
    var sensitivity: Int?
    @Option(name: .customLong("sensitivity-method"), help: ArgumentHelp("How --sensitivity measures: probe (each layer compressed alone and evaluated: one evaluation per layer) or fisher (every layer truncated once, then Σ over the validation windows of ⟨gradient, truncation error⟩² — the empirical Fisher along the truncation — one backward pass per window); kfac, with --calibration and without --sensitivity: no probes, ½·T²·tr(G·W·M·Wᵀ) per layer from the calibration text's input moments M and output-gradient moments G (K-FAC's Fisher of the whole weight; one backward pass per calibration window, shared with --output-fisher). Spend it with --objective sum to drop, across all layers, what loses the least loss per parameter — for SVD layers, whose spectra are exact; an MPO's Kronecker spectra misstate its errors, and there the default max did better (results/smollm2).", valueName: "probe|fisher|kfac"))
    var sensitivityMethod: SensitivityMethod?
    @Option(name: .customLong("sensitivity-file"), help: ArgumentHelp("Keep the measured sensitivities: with --sensitivity K they are written here; when the file exists they are read from it instead of measured (one measurement serves every budget and --sites; its layers must be the model's).", valueName: "json"))
    var sensitivityFile: String?
    @Option(name: .customLong("min-chi"), help: "Every layer's χ at least this (with --params/--ratio; default: half the uniform χ that fits the budget, so no layer is starved).")
    var minChi: Int?
    @Option(help: ArgumentHelp("Also compress the token embedding: tt:R, tt:R:4x4x8, mpo:χ or svd:r (the table's truncated SVD; dense contracts a TT/MPO embedding back); a whole-model budget (--params, --ratio) counts the table at that size. svd:auto, with --params or --ratio: the table's rank from the budget, the table one more layer of the allocation (its spectrum whitened as --embedding-error truncates it; with K-FAC weights, --embedding-error fisher, priced by K-FAC as head and embedding — on SmolLM2 that price was 2–3× low against the linears', and a rank set by hand did as well or better: results/smollm2).", valueName: "kind"))
    var embedding: String?
    @Option(name: .customLong("embedding-error"), help: ArgumentHelp("With --calibration and a tied head: truncate an mpo:χ or svd:r embedding by its error as the head on the calibration text (output, the default), by that error with each token's logit weighted by how often the original predicts it there (fisher: the head's two-sided K-FAC Fisher; for mpo:χ its token weights as a Kronecker product over the token factors, then --als-sweeps in the exact weighted error), or by the table's own error (weight, as without --calibration).", valueName: "output|fisher|weight"))
    var embeddingError = "output"
    @Option(help: "Data-aware truncation (SVD-LLM's whitening): truncate each layer by its output error on this text's activations (the original model's), not by its weight error; exact for --sites svd, a Kronecker approximation of the inputs' statistics for MPOs. A tied embedding (--embedding mpo:χ or svd:r) is truncated as the head, by its logits' error.")
    var calibration: String?
    @Flag(name: .customLong("output-fisher"), help: "With --calibration: whiten each layer's outputs too, by the second moment of the loss gradient they receive on the calibration text (K-FAC's two-sided Fisher: the truncation then minimises the loss rise to second order, not the output error; one backward pass per calibration window). Exact for --sites svd; an MPO is whitened by a Kronecker product over its output factors, as over its input factors, and --als-sweeps fits its cores to the exact two-sided error.")
    var outputFisher = false
    @Option(name: .customLong("calibration-tokens"), help: "Tokens of --calibration read, in windows of --eval-context.") var calibrationTokens = 8192
    @Flag(name: .customLong("error-correction"), help: "With --calibration: after truncating, refit every layer, block by block in the order a pass reads them, to the original model's outputs from the inputs the compressed model gives it (the least-squares weight for those inputs, truncated whitened at the layer's bonds): each layer undoes what the layers before it lost. About six more passes over the calibration text.")
    var errorCorrection = false
    @Option(name: .customLong("als-sweeps"), help: "With --calibration, for MPO layers: fit the cores to the exact output error on the calibration inputs by this many sweeps of alternating least squares, starting from the Kronecker-whitened TT-SVD (docs/SPEC.md §4). 0 keeps the Kronecker truncation. Plain SVD layers are exact already.")
    var alsSweeps = 2
    @Option(help: "Output checkpoint.") var out: String
    @Option(help: "Optional relative tolerance per TT-SVD step (smaller bonds where it suffices).") var tolerance: Double?
    @Option(help: "Text for the validation numbers (default: Tiny Shakespeare).") var data: String?
    @Option(name: .customLong("eval-batches"), help: "Validation batches (of 8 windows of --eval-context tokens); 0 skips the validation numbers.") var evalBatches = 20
    @Option(help: "Seed of the evaluation batches.") var seed: UInt64 = 2024
    @OptionGroup var shape: ShapeHintOptions
    @OptionGroup var deviceOptions: DeviceOptions

    func run() throws {
        if let chi, chi < 1 { throw ValidationError("--chi must be ≥ 1 (got \(chi))") }
        let budgets = [chi != nil, params != nil, ratio != nil, linearRatio != nil].filter { $0 }.count
        guard budgets <= 1 else { throw ValidationError("give one of --chi, --params, --ratio and --linear-ratio") }
        guard budgets == 1 || embedding != nil else { throw ValidationError("give --chi, --params, --ratio or --linear-ratio, --embedding, or both") }
        guard ["output", "fisher", "weight"].contains(embeddingError) else { throw ValidationError("--embedding-error must be output, fisher or weight (got '\(embeddingError)')") }
        if embeddingError == "fisher" {
            guard calibration != nil, let embedding, embedding.hasPrefix("svd:") || embedding.hasPrefix("mpo:") else {
                throw ValidationError("--embedding-error fisher weights the tied table's rows by the original's predictions on --calibration TEXT: it needs --calibration and --embedding svd:r or mpo:χ (a per-token tensor train has no head form)")
            }
        }
        let autoTable = embedding?.lowercased() == "svd:auto"
        if autoTable {
            guard params != nil || ratio != nil else {
                throw ValidationError("--embedding svd:auto sizes the table inside a whole-model budget: give --params or --ratio (--chi and --linear-ratio budget the linears alone)")
            }
            guard allocation != "ttsvd" else { throw ValidationError("--embedding svd:auto allocates from the spectra: drop --allocation ttsvd") }
            if sensitivity != nil || (sensitivityMethod != nil && sensitivityMethod != .kfac) {
                throw ValidationError("--embedding svd:auto prices the table by K-FAC; the probes and the Fisher along a truncation measure the linears alone: use --sensitivity-method kfac, or no sensitivity")
            }
        }
        if let ratio, !(ratio > 1) { throw ValidationError("--ratio must be > 1 (got \(ratio))") }
        if let linearRatio, !(linearRatio > 1) { throw ValidationError("--linear-ratio must be > 1 (got \(linearRatio))") }
        let budgeted = params != nil || ratio != nil || linearRatio != nil
        if (sensitivity != nil || sensitivityFile != nil) && !budgeted { throw ValidationError("--sensitivity and --sensitivity-file go with --params, --ratio or --linear-ratio") }
        if sensitivityMethod == .kfac {
            guard calibration != nil, budgeted else {
                throw ValidationError("--sensitivity-method kfac weighs the layers by the loss gradients and inputs on --calibration TEXT for a budget: it needs --calibration and --params, --ratio or --linear-ratio")
            }
            guard sensitivity == nil else { throw ValidationError("--sensitivity-method kfac reads every --calibration window, not validation batches: drop --sensitivity \(sensitivity!)") }
        } else if sensitivityMethod != nil && sensitivity == nil && sensitivityFile == nil {
            throw ValidationError("--sensitivity-method goes with --sensitivity K (it says how K batches measure the sensitivities), or is kfac")
        }
        if let sensitivityFile, sensitivity == nil, sensitivityMethod != .kfac, !FileManager.default.fileExists(atPath: sensitivityFile) {
            throw ValidationError("--sensitivity-file \(sensitivityFile) does not exist: give --sensitivity K (or --sensitivity-method kfac) as well to measure the sensitivities and write them there")
        }
        if minChi != nil && !budgeted { throw ValidationError("--min-chi goes with --params, --ratio or --linear-ratio") }
        if let allocation, !["spectra", "ttsvd", "measured"].contains(allocation) { throw ValidationError("--allocation is spectra, ttsvd or measured (got \(allocation))") }
        if allocation == "measured" {
            guard calibration != nil, budgeted else { throw ValidationError("--allocation measured needs --calibration TEXT and --params, --ratio or --linear-ratio (it measures each layer's exact output error on the calibration inputs)") }
            guard sites != "svd" else { throw ValidationError("--allocation measured is for MPO layers: with --sites svd the whitened spectra are exact already, so drop it") }
        }
        if let evalContext, evalContext < 2 { throw ValidationError("--eval-context must be ≥ 2 (got \(evalContext))") }
        let siteCount = try parseSites(sites)
        if let minChi, minChi < 1 { throw ValidationError("--min-chi must be ≥ 1 (got \(minChi))") }
        if calibration != nil {
            guard allocation != "ttsvd" else { throw ValidationError("--calibration allocates from the whitened spectra: drop --allocation ttsvd") }
            guard calibrationTokens >= 1 else { throw ValidationError("--calibration-tokens must be ≥ 1 (got \(calibrationTokens))") }
        }
        if outputFisher {
            guard calibration != nil else {
                throw ValidationError("--output-fisher whitens every layer's outputs by the loss gradients on --calibration TEXT: it needs --calibration")
            }
            guard !errorCorrection else { throw ValidationError("--output-fisher does not go with --error-correction (its refit is by the output error alone)") }
        }
        guard alsSweeps >= 0 else { throw ValidationError("--als-sweeps must be ≥ 0 (got \(alsSweeps))") }
        if errorCorrection {
            guard calibration != nil else { throw ValidationError("--error-correction needs --calibration TEXT (the inputs the layers are refitted on)") }
            guard chi != nil || budgeted else { throw ValidationError("--error-correction needs --chi, --params, --ratio or --linear-ratio") }
        }
        let device = try deviceOptions.make()
        let dense = try loadCheckpoint(checkpoint, device: device, hints: shape.hints, purpose: .inference)
        let keptSensitivities = try readSensitivities(dense)   // before any work, so a wrong file fails at once
        let kfacWeights = sensitivityMethod == .kfac || keptSensitivities?.measuredBy == .kfac
        if autoTable, let kept = keptSensitivities {
            guard kept.measuredBy == .kfac else {
                throw ValidationError("--embedding svd:auto prices the table by K-FAC, and \(sensitivityFile!) was measured by \(kept.measuredBy.rawValue): use a K-FAC file or none")
            }
            guard kept.median != nil else {
                throw ValidationError("\(sensitivityFile!) was written before K-FAC files kept their scale, which --embedding svd:auto needs to price the table beside the layers: delete it to measure again")
            }
        }
        if autoTable, kfacWeights, embeddingError != "fisher" {
            throw ValidationError("--embedding svd:auto with K-FAC weights prices the table in the head's Fisher metric: add --embedding-error fisher")
        }
        // The table --embedding asks for, parsed before any work (a bad one fails at once); a whole-model budget counts it at its
        // compressed size. svd:auto: its rank comes from the budget, the table one more layer of it.
        var embeddingTarget: EmbeddingKind?
        do { embeddingTarget = try (autoTable ? nil : embedding).map { try EmbeddingKind.parse($0, vocabulary: dense.config.vocabularySize, channels: dense.config.channels) } } catch {
            throw ValidationError("\(error)")
        }
        if embeddingError == "fisher", !dense.config.architecture.tiedHead {
            throw ValidationError("--embedding-error fisher is for a tied table (the head it also is); this model's head is its own linear, whitened by its inputs already")
        }
        let codec = try checkpointCodec(checkpoint)
        let data = try loadDataset(try resolveData(self.data), codec: codec)
        let window = min(evalContext ?? min(dense.config.context, 512), dense.config.context)
        try data.validate(time: window)
        try data.checkFits(vocabularySize: dense.config.vocabularySize)
        func evaluate(_ m: Transformer) throws -> (Double, Double) {   // the same batches before and after
            var rng = SplitMix64(seed: seed)
            guard evalBatches > 0 else { return (.nan, .nan) }
            return try m.evaluate(data.validation, batches: evalBatches, batchSize: 8, time: window, rng: &rng)
        }
        let before = try evaluate(dense)
        var moments: [String: [Double]] = [:], outputMoments: [String: [Double]] = [:], calibrationTokens: [Int32] = [], headProbabilities: [Double]?
        var kfac: KFACWeights?
        var embeddingGradients: (moment: [Double], frequencies: [Double], context: Int)?   // svd:auto under K-FAC: the table priced as the embedding
        if let calibration {
            let text = try loadDataset(URL(fileURLWithPath: calibration), codec: codec)
            try text.checkFits(vocabularySize: dense.config.vocabularySize)
            calibrationTokens = Array((text.train + text.validation).prefix(self.calibrationTokens))
            let t0 = Date()
            (moments, headProbabilities) = try Calibration.inputStatistics(dense, tokens: calibrationTokens, context: min(window, calibrationTokens.count),
                                                                           headProbabilities: embeddingError == "fisher")
            print(String(format: "calibration: %d tokens of %@ in windows of %d, %.0f s: layers truncated by their output error on them",
                         calibrationTokens.count, calibration, min(window, calibrationTokens.count), Date().timeIntervalSince(t0)))
            let kfacWanted = sensitivityMethod == .kfac && keptSensitivities == nil
            if outputFisher || kfacWanted || (autoTable && kfacWeights) {
                let t1 = Date(), context = min(window, calibrationTokens.count - 1)
                let gradients = try Calibration.outputGradientMoments(dense, tokens: calibrationTokens, context: context)
                print(String(format: "output gradients: the loss gradients of every layer's outputs over the same tokens in windows of %d, %.0f s", context, Date().timeIntervalSince(t1))
                      + (outputFisher ? ": layers truncated by K-FAC's two-sided Fisher" : ""))
                if outputFisher { outputMoments = gradients.filter { $0.key != Calibration.embeddingOutput } }
                if autoTable, let g = gradients[Calibration.embeddingOutput] {
                    let rows = Calibration.gradientWindows(tokens: calibrationTokens.count, context: context) * context
                    var f = [Double](repeating: 0, count: dense.config.vocabularySize)
                    for t in calibrationTokens.prefix(rows) { f[Int(t)] += 1 / Double(rows) }
                    embeddingGradients = (g, f, context)
                }
                if kfacWanted {
                    kfac = (try BondAllocator.kfacSensitivity(dense, inputMoments: moments, outputMoments: gradients, context: context),
                            Calibration.gradientWindows(tokens: calibrationTokens.count, context: context), Date().timeIntervalSince(t1))
                }
            }
        }
        var model = dense, reports: [LayerCompression] = []
        // Every layer's factorisation: --sites, or the chooser's at the χ in play.
        func factorizations(chi c: Int) -> [String: MPOFactorization] { Compression.factorizations(dense, chi: c, sites: siteCount) }
        if let chi {
            (model, reports) = try Compression.compress(dense, chi: chi, factorizations: siteCount == nil ? [:] : factorizations(chi: chi),
                                                        relativeTolerance: tolerance, inputMoments: moments, outputMoments: outputMoments, alsSweeps: alsSweeps)
        }
        if budgeted {
            let linearDense = dense.config.linearLayers.reduce(0) { $0 + $1.out * $1.in }
            var compressedTable = dense.config
            if let embeddingTarget { compressedTable.tokenEmbedding = embeddingTarget }
            let tableParameters = autoTable ? 0 : compressedTable.embeddingParameterCount   // svd:auto: the table is allocated with the layers
            let fixed = dense.parameterCount - linearDense - dense.config.embeddingParameterCount + tableParameters
            var table: LayerSpectra?, tableRaw: (head: Double, embedding: Double)?
            if autoTable {
                let headMoment = dense.config.architecture.tiedHead && embeddingError != "weight" ? moments[Calibration.headInput] : nil
                table = try SpectralAllocator.tableSpectra(dense, headMoment: headMoment,
                                                           rowWeights: headMoment == nil ? nil : headProbabilities.map(Compression.fisherRowWeights))
                if kfacWeights, let headMoment, let headProbabilities, let e = embeddingGradients {
                    let t = try Compression.embeddingTable(dense), (V, D) = (dense.config.vocabularySize, dense.config.channels)
                    tableRaw = (try BondAllocator.kfacTableSensitivity(table: t, vocabulary: V, channels: D, headMoment: headMoment, probabilities: headProbabilities),
                                try BondAllocator.kfacEmbeddingSensitivity(table: t, vocabulary: V, channels: D, outputMoment: e.moment, frequencies: e.frequencies,
                                                                           context: e.context))
                }
            }
            let budget = params ?? linearRatio.map { fixed + Int((Double(linearDense) / $0).rounded(.down)) }
                ?? Int((Double(dense.parameterCount) / ratio!).rounded(.down))
            let plan = try allocate(dense, budget: budget, fixed: fixed, factorizations: factorizations(chi: 8), kept: keptSensitivities,
                                    table: table, tableRaw: tableRaw,
                                    spectral: autoTable || !moments.isEmpty || (allocation ?? (linearDense >= 4_000_000 ? "spectra" : "ttsvd")) == "spectra",
                                    validation: data.validation, window: window, moments: moments, outputMoments: outputMoments, kfac: kfac)
            (model, reports) = try Compression.compress(dense, chi: 1, bondCaps: plan.bonds, factorizations: plan.factorizations,
                                                        relativeTolerance: tolerance, inputMoments: moments, outputMoments: outputMoments, alsSweeps: alsSweeps)
            var tableCores = 0   // svd:auto: the table's share of the allocation
            if let table, let bonds = plan.bonds[table.name] {
                embeddingTarget = .lowRank(rank: bonds[1], vocabulary: dense.config.vocabularySize, channels: dense.config.channels)
                tableCores = table.factorization.parameterCount(bonds: bonds)
                print("tok_emb: svd:\(bonds[1]) from the budget, \(dense.config.embeddingParameterCount) → \(tableCores) parameters"
                      + String(format: " (predicted relative error %.4f", plan.predictedError[table.name] ?? .nan) + (tableRaw != nil ? ", weighted by K-FAC as head and embedding)" : ")"))
            }
            let linearCores = plan.modelParameters - fixed - tableCores
            print("budget \(budget) parameters: allocation of \(plan.modelParameters)"
                  + String(format: " (linear layers %d → %d, %.2f× fewer)", linearDense, linearCores, Double(linearDense) / Double(linearCores)))
        }
        if errorCorrection {   // refit every layer to the original's outputs from the compressed model's inputs (docs/SPEC.md §4)
            let t0 = Date()
            reports = try Calibration.correct(model, original: dense, tokens: calibrationTokens, context: min(window, calibrationTokens.count),
                                              alsSweeps: alsSweeps)
            print(String(format: "error correction: every layer refitted, block by block, to the original's outputs from the compressed model's inputs, %.0f s",
                         Date().timeIntervalSince(t0)))
        }
        for r in reports {
            print(pad(r.layer, 22) + pad(r.factorization, 22) + lpad(r.bonds.map(String.init).joined(separator: ","), 12)
                  + lpad("\(r.parameters)", 8) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                  + lpad(String(format: "err %.4f", r.relativeError), 12) + lpad(String(format: "bound %.4f", r.errorBound), 14))
        }
        var embeddingTruncation = "weight"   // what the table was truncated by (the checkpoint's embedding_error)
        if let target = embeddingTarget {
            let (m, r) = try Compression.compressEmbedding(model, to: target, headMoment: embeddingError == "weight" ? nil : moments[Calibration.headInput],
                                                           rowWeights: headProbabilities.map(Compression.fisherRowWeights), alsSweeps: alsSweeps)
            model = m
            embeddingTruncation = r.headWeightedError != nil ? "fisher" : r.headOutputError != nil ? "output" : "weight"
            print(pad("tok_emb", 22) + pad(r.kind, 36) + lpad("\(r.parameters)", 8) + lpad(String(format: "%.1f×", r.compressionRatio), 8)
                  + lpad(String(format: "err %.4f", r.relativeError), 12) + lpad(String(format: "bound %.4f", r.errorBound), 14))
            print(String(format: "embedding parameters %d → %d (ratio %.2f×), relative error %.4f",
                         r.denseParameters, r.parameters, r.compressionRatio, r.relativeError)
                  + (r.headOutputError.map { String(format: "; truncated as the tied head by its output error on the calibration text: %.4f", $0) } ?? "")
                  + (r.headWeightedError.map { String(format: " (weighted by the predicted token probabilities, what it minimised: %.4f)", $0) } ?? ""))
        }
        let after = try evaluate(model)
        var meta = ["compressed_from": checkpoint]
        if let chi { meta["chi"] = "\(chi)" }
        if let params { meta["params"] = "\(params)" }
        if let ratio { meta["ratio"] = "\(ratio)" }
        if let linearRatio { meta["linear_ratio"] = "\(linearRatio)" }
        if let sites { meta["sites"] = sites }
        if let calibration { meta["calibration"] = "\(URL(fileURLWithPath: calibration).lastPathComponent), \(calibrationTokens.count) tokens" }
        if errorCorrection { meta["error_correction"] = "block by block" }
        if outputFisher { meta["output_fisher"] = "K-FAC two-sided" }
        if calibration != nil { meta["als_sweeps"] = "\(alsSweeps)" }
        if let embedding {
            meta["embedding"] = autoTable ? "svd:auto → \(embeddingTarget.map { $0.description } ?? "")" : embedding
            meta["embedding_error"] = embeddingTruncation
        }
        meta.merge(try data.codec.metadata()) { $1 }
        try ModelCheckpoint.save(model, to: URL(fileURLWithPath: out), metadata: meta)
        print(String(format: "parameters %d → %d (%.1f× smaller)", dense.parameterCount, model.parameterCount,
                     Double(dense.parameterCount) / Double(model.parameterCount)))
        if evalBatches > 0 {
            print(String(format: "validation (%d × 8 windows of %d tokens) before: loss %.4f (perplexity %.2f) acc %.2f%%   after: loss %.4f (perplexity %.2f) acc %.2f%%",
                         evalBatches, window, before.0, exp(before.0), 100 * before.1, after.0, exp(after.0), 100 * after.1))
        }
        print("wrote \(out); heal it with: " + healingCommand(dense: dense))
    }

    /// The fine-tuning that won the quality back in results/: distillation from the original.
    /// PicoGPT (results/compression-recipes): lr 4e-3, distill weight 0.5 at temperature 2,
    /// 1,000 steps. A pretrained LLM (results/smollm2): lr 1e-4, α 0.5 at τ 1 over the teacher's
    /// full distribution, windows of 256 — the runs measured there; it needs far more steps.
    /// Without --data it points at the original's own samples, which healed general text best there.
    func healingCommand(dense: Transformer) -> String {
        if dense.config.architecture.family == .picogpt {
            let data = self.data.map { " --data \($0)" } ?? ""
            return "mpo-train train --init \(out) --teacher \(checkpoint)\(data) --lr 4e-3 --distill-weight 0.5 --distill-temperature 2 --steps 1000 --warmup 100"
        }
        // lr 1e-4 beat 5e-4 wherever both were run (results/smollm2): the whitened 2× SVD model on the
        // original's samples, 255.9 vs 368.7 held-out after 100 steps; an error-corrected one broke at 5e-4.
        // MPO cores (not SVD factors) healed better in one gauge: the 2× 2-site MPO 289.6 vs 322.3 held-out
        // with --balance-cores, where the same flag cost the SVD model (results/smollm2, "The gauge").
        // One decaying schedule of 400 steps over 48 sample batches (393,216 tokens, about one pass) healed
        // the 2× SVD model to 125.6 held-out, against 184.6 after 100 steps and 138.5 after the same data and
        // steps as four restarted stages. The token counts below follow from these numbers, not a second copy.
        let (steps, batch, context) = (400, 4, 256)
        let (sampleBatches, sequences, sampleTokens) = (48, 16, 512)
        let balance = sites == "svd" ? "" : " --balance-cores"
        let command = "mpo-train train --init \(out) --teacher \(checkpoint) --data \(self.data ?? "own.txt") --lr 1e-4\(balance) --distill-weight 0.5 --distill-temperature 1 --batch \(batch) --context \(context) --steps \(steps) --warmup 20"
        let size = "\(steps) steps of \(batch * context) tokens read \(steps * batch * context / 1000)k tokens: about one pass over the text"
        guard self.data == nil else { return command + "   # \(size); more steps, in one schedule, heal more: results/smollm2" }
        let samples = "for b in $(seq 0 \(sampleBatches - 1)); do mpo-train sample --checkpoint \(checkpoint) --batch \(sequences) --tokens \(sampleTokens) --temperature 1 --top-k 0 --seed $((\(sequences) * b)) | grep -v '^--- sequence'; done > own.txt"
        return command + "   # own.txt: \(size) — general text, or the original's own samples (\(sampleBatches * sequences * sampleTokens) tokens), which healed held-out text best there (results/smollm2/run.sh selfgen): \(samples)"
    }

    /// The sensitivities kept in --sensitivity-file when it exists; they must have been measured
    /// as this run would measure them (whitened or not, with as many batches as --sensitivity asks).
    func readSensitivities(_ dense: Transformer) throws -> SensitivityRecord? {
        guard let sensitivityFile, FileManager.default.fileExists(atPath: sensitivityFile) else { return nil }
        let record = try SensitivityRecord.read(from: URL(fileURLWithPath: sensitivityFile), layers: dense.config.linearLayers.map(\.name))
        guard record.whitened == (calibration != nil) else {
            throw ValidationError("\(sensitivityFile) was measured \(record.whitened ? "with" : "without") --calibration (its weights are per unit of "
                                  + "\(record.whitened ? "output" : "weight") error), and this run is \(calibration != nil ? "with" : "without"): use a file measured the same way")
        }
        if let sensitivityMethod, sensitivityMethod != record.measuredBy {
            throw ValidationError("\(sensitivityFile) was measured by \(record.measuredBy.rawValue), not --sensitivity-method \(sensitivityMethod.rawValue): drop --sensitivity-method to use it, or use another file")
        }
        if let sensitivity, sensitivity != record.batches {
            throw ValidationError("\(sensitivityFile) was measured with \(record.batches) batches, not --sensitivity \(sensitivity): drop --sensitivity to use it, or delete it to measure again")
        }
        return record
    }

    /// The budgeted allocation, with sensitivity weights when asked (probe χ: the uniform χ whose
    /// model is nearest the budget), every layer at χ ≥ --min-chi (default half the largest
    /// uniform χ that fits).
    func allocate(_ dense: Transformer, budget: Int, fixed: Int, factorizations: [String: MPOFactorization], kept: SensitivityRecord?,
                  table: LayerSpectra? = nil, tableRaw: (head: Double, embedding: Double)? = nil, spectral: Bool,
                  validation: [Int32], window: Int, moments: [String: [Double]], outputMoments: [String: [Double]], kfac: KFACWeights?) throws -> BondAllocation {
        var weights: [String: Double] = [:]
        let fs = dense.config.linearLayers.map { factorizations[$0.name]! } + (table.map { [$0.factorization] } ?? [])
        func size(_ c: Int) -> Int { fixed + fs.reduce(0) { $0 + $1.parameterCount(bonds: $1.cappedBonds(chi: c)) } }
        let uniform = SpectralAllocator.largestUniformChi(fs, fixed: fixed, budget: budget)
        let floor = minChi ?? max(1, uniform / 2)
        print("allocation: every layer χ ≥ \(floor)\(minChi == nil ? " (half of χ = \(uniform), the largest uniform χ that fits)" : "")")
        func printWeights() { for (k, v) in weights.sorted(by: { $0.key < $1.key }) { print("  " + pad(k, 22) + String(format: "%.4f", v)) } }
        if let record = kept {
            weights = record.weights
            let whereFrom = record.measuredBy == .kfac ? "from \(record.batches) calibration windows" : "at χ = \(record.probeChi), \(record.batches) batches"
            print("sensitivity read from \(sensitivityFile!) (measured by \(record.measuredBy.rawValue) on \(record.checkpoint) \(whereFrom), "
                  + "per unit relative \(record.whitened ? "output " : "")error², " + String(format: "%.0f s then):", record.seconds))
            printWeights()
        } else if let kfac {
            weights = BondAllocator.normalised(kfac.raw)
            for l in dense.config.linearLayers where weights[l.name] == nil { weights[l.name] = 1 }   // an untied head: the median
            let median = BondAllocator.median(kfac.raw)
            print("sensitivity by K-FAC (½·T²·tr(G·W·M·Wᵀ) from \(kfac.windows) calibration windows, no probes; median 1 = "
                  + String(format: "%.4g nats of loss per unit relative error²", median) + (objective == "sum" ? "" : "; --objective sum spends it as a loss budget") + "):")
            printWeights()
            if let sensitivityFile {
                try SensitivityRecord(checkpoint: checkpoint, probeChi: 0, batches: kfac.windows, whitened: true, seconds: kfac.seconds,
                                      weights: weights, method: .kfac, median: median).write(to: URL(fileURLWithPath: sensitivityFile))
                print("sensitivity written to \(sensitivityFile)")
            }
        } else if let sensitivity {
            let probe = (1...4096).min { abs(size($0) - budget) < abs(size($1) - budget) }!
            let t0 = Date()
            let method = sensitivityMethod ?? .probe
            switch method {
            case .kfac: preconditionFailure("kfac weights come from the calibration pass (validated in run)")
            case .fisher:
                weights = try BondAllocator.fisherSensitivity(dense, chi: probe, validation: validation, batches: sensitivity, time: window,
                                                              factorizations: factorizations, inputMoments: moments, outputMoments: outputMoments, alsSweeps: alsSweeps)
            case .probe:
                weights = try BondAllocator.sensitivity(dense, chi: probe, validation: validation, batches: sensitivity, time: window,
                                                        factorizations: factorizations, inputMoments: moments, outputMoments: outputMoments, alsSweeps: alsSweeps)
            }
            let seconds = Date().timeIntervalSince(t0)
            print("sensitivity at χ = \(probe) (" + (method == .fisher ? "Fisher along each truncation" : "loss increase")
                  + " per unit relative \(moments.isEmpty ? "" : "output ")error²\(method == .fisher ? ", median 1" : ""), \(sensitivity) batches, "
                  + String(format: "%.0f s):", seconds))
            printWeights()
            if let sensitivityFile {
                try SensitivityRecord(checkpoint: checkpoint, probeChi: probe, batches: sensitivity, whitened: !moments.isEmpty,
                                      seconds: seconds, weights: weights, method: method).write(to: URL(fileURLWithPath: sensitivityFile))
                print("sensitivity written to \(sensitivityFile)")
            }
        }
        if let table, let tableRaw {   // the tied table's K-FAC weight, on the layers' scale
            guard let median = kept?.median ?? kfac.map({ BondAllocator.median($0.raw) }) else {
                preconditionFailure("K-FAC weights come with their median (validated in run)")
            }
            weights[table.name] = max((tableRaw.head + tableRaw.embedding) / median, 1e-3)
            print("  " + pad(table.name, 22) + String(format: "%.4f  (the tied table by K-FAC, nats per unit relative error² in the head's Fisher metric: %.4g as the head + %.4g as the embedding)",
                                                      weights[table.name]!, tableRaw.head, tableRaw.embedding))
        }
        if spectral {
            var spectra = try SpectralAllocator.spectra(dense, factorizations: factorizations, inputMoments: moments, outputMoments: outputMoments)
            if let table { spectra.append(table) }
            guard let o = SpectralAllocator.Objective(rawValue: objective) else { throw ValidationError("--objective is max or sum (got \(objective))") }
            let plan = try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: budget, weights: weights, minimumChi: floor, objective: o)
            guard allocation == "measured" else { return plan }
            // Each layer's exact/Kronecker error ratio at the χ the spectra gave it scales its spectrum's errors; then allocate again.
            let t0 = Date()
            let probe = try Compression.compress(dense, chi: 1, bondCaps: plan.bonds, factorizations: plan.factorizations,
                                                 inputMoments: moments, alsSweeps: alsSweeps).1
            let ratios = Compression.measuredErrorRatios(probe)
            print(String(format: "measured at the spectra's allocation (exact output error / Kronecker spectrum's, after %d ALS sweeps, %.0f s):", alsSweeps, Date().timeIntervalSince(t0)))
            for r in probe { print("  " + pad(r.layer, 32) + String(format: "%.4f / %.4f = %.3f", r.relativeError, r.errorBound, ratios[r.layer]!) + "  at χ \(r.chi)") }
            for (k, v) in ratios { weights[k] = (weights[k] ?? 1) * v * v }
            return try SpectralAllocator.allocate(spectra, fixed: fixed, parameters: budget, weights: weights, minimumChi: floor, objective: o)
        }
        return try BondAllocator.allocate(dense, parameters: budget, factorizations: factorizations, weights: weights, minimumChi: floor, fixed: fixed)
    }
}

/// The K-FAC sensitivities (BondAllocator.kfacSensitivity, raw nats per unit relative error²), over how many
/// calibration windows, in how many seconds.
typealias KFACWeights = (raw: [String: Double], windows: Int, seconds: Double)
