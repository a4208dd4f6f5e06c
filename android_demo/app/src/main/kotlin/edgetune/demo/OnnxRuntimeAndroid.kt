package edgetune.demo

import ai.onnxruntime.OnnxJavaType
import ai.onnxruntime.OnnxTensor
import ai.onnxruntime.OrtEnvironment
import ai.onnxruntime.OrtException
import ai.onnxruntime.OrtSession
import ai.onnxruntime.TensorInfo
import edgetune.trainer.ArtifactException
import edgetune.trainer.DType
import edgetune.trainer.Program
import edgetune.trainer.ProgramSpec
import edgetune.trainer.Runtime
import edgetune.trainer.Signature
import edgetune.trainer.Tensor
import edgetune.trainer.checkSignature
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * ONNX Runtime's Android API as the trainer's [Runtime]: inputs by name. The session is set up as
 * the JVM-tested binding (android_demo/trainer/src/test/.../OrtFfmRuntime.kt) and the Python
 * runner set theirs: all graph optimizations, no memory-pattern planning, the manifest's session
 * config entries, intra-op threads as asked and one inter-op thread.
 */
class OnnxRuntimeAndroid : Runtime {
    override val name = "onnx"
    private val env = OrtEnvironment.getEnvironment()

    override fun open(file: File, spec: ProgramSpec, threads: Int?): Program {
        val opts = OrtSession.SessionOptions().apply {
            setOptimizationLevel(OrtSession.SessionOptions.OptLevel.ALL_OPT)
            setMemoryPatternOptimization(false)
            for ((k, v) in spec.onnxSessionConfig()) addConfigEntry(k, v)
            if (threads != null) { setIntraOpNumThreads(threads); setInterOpNumThreads(1) }
        }
        val session = try { env.createSession(file.path, opts) } catch (e: OrtException) {
            throw ArtifactException("onnxruntime cannot load $file: ${e.message}")
        }
        for ((kind, infos) in listOf("inputs" to session.inputInfo, "outputs" to session.outputInfo)) {
            checkSignature(file, spec, kind, infos.values.map { n ->
                val t = n.info as TensorInfo
                Signature(n.name, TYPES[t.type], t.shape.map { d -> d.takeIf { it >= 0 } })
            })
        }
        return object : Program {
            override val spec = spec

            override fun run(inputs: List<Tensor>): List<Tensor> {
                val feeds = spec.inputs.zip(inputs).associate { (s, t) -> s.name to onnxTensor(t) }
                try {
                    session.run(feeds).use { result ->
                        return spec.outputs.map { o -> fromOnnx(result.get(o.name).get() as OnnxTensor, o.dtype) }
                    }
                } finally {
                    feeds.values.forEach { it.close() }
                }
            }

            override fun close() = session.close()
        }
    }

    private fun onnxTensor(t: Tensor): OnnxTensor {
        val buf = ByteBuffer.allocateDirect(t.bytes.size).order(ByteOrder.LITTLE_ENDIAN)
        buf.put(t.bytes).rewind()
        return OnnxTensor.createTensor(env, buf, t.shape, JAVA_TYPES.getValue(t.dtype))
    }

    private fun fromOnnx(v: OnnxTensor, dtype: DType): Tensor {
        val b = v.byteBuffer.order(ByteOrder.LITTLE_ENDIAN)
        return Tensor(dtype, v.info.shape, ByteArray(b.remaining()).also { b.get(it) })
    }

    private companion object {
        val JAVA_TYPES = mapOf(DType.FLOAT32 to OnnxJavaType.FLOAT, DType.INT64 to OnnxJavaType.INT64,
            DType.INT32 to OnnxJavaType.INT32, DType.BOOL to OnnxJavaType.BOOL)
        val TYPES = JAVA_TYPES.entries.associate { (k, v) -> v to k }
    }
}
