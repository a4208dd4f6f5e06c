package edgetune.trainer

import java.io.File

/**
 * One loaded program of an artifact. Implementations are thin adapters over a runtime's own
 * API: ONNX Runtime takes inputs by name, ExecuTorch by position, so [run] takes them in the
 * manifest's input order and returns outputs in its output order (the contract's rule).
 */
interface Program : AutoCloseable {
    val spec: ProgramSpec

    /** [inputs] in `spec.inputs` order -> outputs in `spec.outputs` order. */
    fun run(inputs: List<Tensor>): List<Tensor>
}

/** Opens an artifact's programs on one runtime (`onnx` or `executorch`). */
interface Runtime {
    /** The manifest's runtime key: which program file this runtime reads. */
    val name: String

    /**
     * Load [file]; refuse it (ArtifactException) when the runtime's description of its inputs and
     * outputs differs from [spec] (names where the runtime keeps them, dtypes, shapes, in order).
     */
    fun open(file: File, spec: ProgramSpec, threads: Int?): Program
}

/** What a runtime reports of one input or output of a loaded program; null where it keeps no name or a dimension is symbolic. */
data class Signature(val name: String?, val dtype: DType?, val shape: List<Long?>)

/** Refuse a program whose [kind] ("inputs" or "outputs") differ from the manifest's. */
fun checkSignature(file: File, spec: ProgramSpec, kind: String, have: List<Signature>) {
    val want = if (kind == "inputs") spec.inputs else spec.outputs
    if (have.size != want.size) {
        throw ArtifactException("$file has ${have.size} $kind, the manifest lists ${want.size}: the manifest belongs to another artifact; re-export")
    }
    for ((i, pair) in want.zip(have).withIndex()) {
        val (t, s) = pair
        val sameShape = s.shape.size == t.shape.size && s.shape.zip(t.shape).all { (d, w) -> d == null || d == w }
        if ((s.name != null && s.name != t.name) || s.dtype != t.dtype || !sameShape) {
            throw ArtifactException("$file: ${kind.dropLast(1)} $i is ${shorten(s.name ?: "?")} ${s.dtype?.manifestName}${s.shape}, the manifest says ${shorten(t.name)} ${t.dtype.manifestName}${t.shape}: the manifest belongs to another artifact or was edited; re-export")
        }
    }
}

/** Check every input's presence, dtype and shape before a run. */
fun checkFeeds(spec: ProgramSpec, feeds: Map<String, Tensor>): List<Tensor> = spec.inputs.map { t ->
    val a = feeds[t.name] ?: throw DataException("input ${shorten(t.name)} (${t.role}) is missing")
    if (a.dtype != t.dtype) throw DataException("input ${shorten(t.name)} has dtype ${a.dtype.manifestName}, the program takes ${t.dtype.manifestName}")
    if (a.shapeList() != t.shape) throw DataException("input ${shorten(t.name)} has shape ${a.shapeList()}, the program takes ${t.shape}")
    a
}
