package edgetune.demo

import edgetune.trainer.ArtifactException
import edgetune.trainer.DType
import edgetune.trainer.Program
import edgetune.trainer.ProgramSpec
import edgetune.trainer.Runtime
import edgetune.trainer.Tensor
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import java.io.File
import org.pytorch.executorch.DType as EtDType
import org.pytorch.executorch.Tensor as EtTensor

/**
 * ExecuTorch's Android API as the trainer's [Runtime]: inputs by position, in the manifest's
 * order (the contract's rule), outputs likewise. This API reports no per-input dtypes or shapes,
 * so a program that does not match its manifest is refused by the runtime at the first call,
 * and that refusal becomes an [ArtifactException]. XNNPACK sizes its own thread pool.
 */
class ExecuTorchAndroid : Runtime {
    override val name = "executorch"

    override fun open(file: File, spec: ProgramSpec, threads: Int?): Program {
        val module = try { Module.load(file.path) } catch (e: RuntimeException) {
            throw ArtifactException("ExecuTorch cannot load $file: ${e.message}")
        }
        return object : Program {
            override val spec = spec

            override fun run(inputs: List<Tensor>): List<Tensor> {
                val outs = try {
                    module.forward(*inputs.map { EValue.from(toEt(it)) }.toTypedArray())
                } catch (e: RuntimeException) {
                    throw ArtifactException("ExecuTorch refused $file's inputs (${e.message}): the manifest does not match the program; re-export")
                }
                if (outs.size != spec.outputs.size) throw ArtifactException("$file returned ${outs.size} outputs, the manifest lists ${spec.outputs.size}; re-export")
                return spec.outputs.zip(outs).map { (o, v) -> fromEt(v.toTensor(), o.dtype) }
            }

            override fun close() = module.destroy()
        }
    }

    private fun toEt(t: Tensor): EtTensor = when (t.dtype) {
        DType.FLOAT32 -> EtTensor.fromBlob(t.floats(), t.shape)
        DType.INT64 -> EtTensor.fromBlob(t.longs(), t.shape)
        else -> throw ArtifactException("a ${t.dtype.manifestName} input is not used by edgetune's programs")
    }

    private fun fromEt(t: EtTensor, dtype: DType): Tensor {
        val shape = t.shape()
        return when (t.dtype()) {
            EtDType.FLOAT -> Tensor.ofFloats(shape, t.dataAsFloatArray)
            EtDType.INT64 -> Tensor.ofLongs(shape, t.dataAsLongArray)
            else -> throw ArtifactException("ExecuTorch returned a ${t.dtype()} output where the manifest says ${dtype.manifestName}; re-export")
        }.also { if (it.dtype != dtype) throw ArtifactException("ExecuTorch returned ${it.dtype.manifestName} where the manifest says ${dtype.manifestName}; re-export") }
    }
}
