import Foundation

/// Learning-rate schedules and the step's hyper and noise inputs (Hyper.kt).
public enum Hyper {
    public static let schedules = ["constant", "linear"]

    /// Rate of `step` (1-based) of `total`: warm-up over round-half-even(6% of total) steps (>= 1), then linear decay to 0.
    public static func linear(_ step: Int64, _ total: Int64, _ peak: Double) -> Double {
        let warmup = max(1, Int64((0.06 * Double(total)).rounded(.toNearestOrEven)))
        if step <= warmup { return peak * Double(step) / Double(warmup) }
        return peak * max(0.0, Double(total - step + 1) / Double(max(1, total - warmup + 1)))
    }

    public static func defaultSchedule(_ m: Manifest) -> String { (m.optimizer["name"] as? String) == "zo" ? "constant" : "linear" }

    public static func scheduled(_ schedule: String, _ step: Int64, _ total: Int64, _ peak: Double) throws -> Double {
        guard schedules.contains(schedule) else { throw EdgetuneError.config("schedule \(shorten(schedule)); choose one of \(schedules)") }
        return schedule == "constant" ? peak : linear(step, total, peak)
    }

    static func resampleDue(_ step: Int64, _ nu: Int64) -> Bool { (step - 1) % max(1, nu) == 0 }

    /// The hyper and noise inputs of `program` for step `step` (1-based) at learning rate `lr`.
    public static func feeds(_ program: ProgramSpec, _ m: Manifest, step: Int64, lr: Double, seed: UInt64) throws -> [String: Tensor] {
        guard lr.isFinite, lr > 0, lr <= Manifest.float32Max else { throw EdgetuneError.config("learning rate \(lr) must be a positive number that fits float32") }
        let names = Set(program.inputs.map(\.name))
        var out: [String: Tensor] = [Names.lr: .scalar(Float(lr))]
        if names.contains(Names.step) { out[Names.step] = .scalar(Float(step)) }
        if names.contains(Names.eps) { out[Names.eps] = .scalar(Float(Manifest.number(m.optimizer["eps"]) ?? 0)) }
        let noise = program.ofRole("noise")
        if !noise.isEmpty || names.contains(Names.resample) {
            let due = resampleDue(step, m.optimizer["nu"] as? Int64 ?? 1)
            if names.contains(Names.resample) { out[Names.resample] = .scalar(due ? 1 : 0) }
            var rng = NumpyNormal([seed, UInt64(step)])
            for t in noise {
                let n = Int(Tensor.count(t.shape))
                // V candidates are zeros on steps that keep V, and draw nothing
                let values = t.name.hasPrefix(Names.noiseV) && !due ? [Float](repeating: 0, count: n) : rng.fill(n)
                out[t.name] = .floats(t.shape, values)
            }
        }
        return out
    }
}
