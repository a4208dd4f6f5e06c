package edgetune.trainer

import java.nio.ByteBuffer
import java.nio.ByteOrder

/** The contract's dtypes: manifest name, safetensors name, bytes per element. */
enum class DType(val manifestName: String, val safetensorsName: String, val size: Int) {
    FLOAT32("float32", "F32", 4), INT64("int64", "I64", 8), INT32("int32", "I32", 4), BOOL("bool", "BOOL", 1);

    companion object {
        fun ofManifest(name: String): DType? = entries.firstOrNull { it.manifestName == name }
        fun ofSafetensors(name: String): DType? = entries.firstOrNull { it.safetensorsName == name }
    }
}

/**
 * A dense tensor: [dtype], [shape] (empty for a scalar) and its elements as little-endian
 * bytes in row-major order, which is how safetensors stores them and how the runtimes take them.
 */
class Tensor(val dtype: DType, val shape: LongArray, val bytes: ByteArray) {
    init {
        require(bytes.size.toLong() == count(shape) * dtype.size) {
            "a ${dtype.manifestName}${shape.contentToString()} tensor needs ${count(shape) * dtype.size} bytes, got ${bytes.size}"
        }
    }

    val size: Int get() = (bytes.size / dtype.size)

    private fun buffer(): ByteBuffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)

    fun floats(): FloatArray = FloatArray(size).also { buffer().asFloatBuffer().get(it) }

    fun longs(): LongArray = LongArray(size).also { buffer().asLongBuffer().get(it) }

    /** No NaN or Inf (always true of integer tensors). */
    fun isFinite(): Boolean = dtype != DType.FLOAT32 || floats().all { it.isFinite() }

    fun shapeList(): List<Long> = shape.toList()

    companion object {
        fun count(shape: LongArray): Long = shape.fold(1L) { a, d -> a * d }

        fun ofFloats(shape: LongArray, values: FloatArray): Tensor {
            val b = ByteBuffer.allocate(values.size * 4).order(ByteOrder.LITTLE_ENDIAN)
            b.asFloatBuffer().put(values)
            return Tensor(DType.FLOAT32, shape, b.array())
        }

        fun ofLongs(shape: LongArray, values: LongArray): Tensor {
            val b = ByteBuffer.allocate(values.size * 8).order(ByteOrder.LITTLE_ENDIAN)
            b.asLongBuffer().put(values)
            return Tensor(DType.INT64, shape, b.array())
        }

        fun scalar(value: Float): Tensor = ofFloats(LongArray(0), floatArrayOf(value))
    }
}
