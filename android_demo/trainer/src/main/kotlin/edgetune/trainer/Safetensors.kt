package edgetune.trainer

import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * The safetensors format (never pickle): an 8-byte little-endian header length, a JSON
 * header {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
 * then the raw bytes.
 */
object Safetensors {
    /** The safetensors library's own cap on the header. */
    const val MAX_HEADER_BYTES = 100L * 1024 * 1024

    class Contents(val tensors: Map<String, Tensor>, val metadata: Map<String, String>)

    /** Parse [raw]; IllegalArgumentException names what is malformed. */
    fun decode(raw: ByteArray): Contents {
        require(raw.size >= 8) { "shorter than the 8-byte header length" }
        val n = ByteBuffer.wrap(raw, 0, 8).order(ByteOrder.LITTLE_ENDIAN).long
        require(n >= 2 && n <= minOf(MAX_HEADER_BYTES, raw.size - 8L)) { "header length $n exceeds the file" }
        val header = Json.parse(String(raw, 8, n.toInt(), Charsets.UTF_8)) as? Map<*, *>
            ?: throw IllegalArgumentException("the header is not a JSON object")
        val dataStart = 8 + n.toInt()
        val tensors = LinkedHashMap<String, Tensor>()
        var metadata = emptyMap<String, String>()
        val spans = ArrayList<LongArray>()
        for ((k, v) in header) {
            val name = k as String
            val entry = v as? Map<*, *> ?: throw IllegalArgumentException("entry ${shorten(name)} is not an object")
            if (name == "__metadata__") {
                metadata = entry.entries.associate { (mk, mv) ->
                    (mk as String) to (mv as? String ?: throw IllegalArgumentException("__metadata__ is not a map of strings"))
                }
                continue
            }
            val dtype = DType.ofSafetensors(entry["dtype"] as? String ?: "")
                ?: throw IllegalArgumentException("tensor ${shorten(name)} has dtype ${shorten(entry["dtype"])}")
            val shape = (entry["shape"] as? List<*> ?: throw IllegalArgumentException("tensor ${shorten(name)} has no shape"))
                .map { (it as? Long)?.takeIf { d -> d in 0..Int.MAX_VALUE } ?: throw IllegalArgumentException("bad shape of ${shorten(name)}") }
                .toLongArray()
            val offsets = (entry["data_offsets"] as? List<*>)?.map { it as? Long }
            require(offsets != null && offsets.size == 2 && offsets[0] != null && offsets[1] != null) { "tensor ${shorten(name)} has no data_offsets" }
            val (begin, end) = offsets[0]!! to offsets[1]!!
            val elements = Tensor.count(shape)
            require(elements <= Int.MAX_VALUE && begin in 0..end && end <= raw.size - dataStart &&
                end - begin == elements * dtype.size) { "tensor ${shorten(name)} has data_offsets [$begin, $end] that do not fit its shape" }
            spans.add(longArrayOf(begin, end))
            tensors[name] = Tensor(dtype, shape, raw.copyOfRange(dataStart + begin.toInt(), dataStart + end.toInt()))
        }
        spans.sortBy { it[0] }
        var at = 0L
        for (s in spans) {
            require(s[0] == at) { "the tensors' byte ranges overlap or leave gaps" }
            at = s[1]
        }
        require(at == (raw.size - dataStart).toLong()) { "the file has bytes past its last tensor" }
        return Contents(tensors, metadata)
    }

    /** The bytes of a safetensors file holding [tensors] (in name order) and [metadata]. */
    fun encode(tensors: Map<String, Tensor>, metadata: Map<String, String>): ByteArray {
        val header = LinkedHashMap<String, Any?>()
        header["__metadata__"] = metadata
        var offset = 0L
        val names = tensors.keys.sorted()
        for (name in names) {
            val t = tensors.getValue(name)
            header[name] = mapOf("dtype" to t.dtype.safetensorsName, "shape" to t.shapeList(),
                "data_offsets" to listOf(offset, offset + t.bytes.size))
            offset += t.bytes.size
        }
        var json = Json.write(header).toByteArray(Charsets.UTF_8)
        val padded = (json.size + 7) / 8 * 8  // the data starts 8-byte aligned, as the library writes it
        json = json + ByteArray(padded - json.size) { ' '.code.toByte() }
        val out = ByteBuffer.allocate(8 + json.size + offset.toInt()).order(ByteOrder.LITTLE_ENDIAN)
        out.putLong(json.size.toLong()).put(json)
        for (name in names) out.put(tensors.getValue(name).bytes)
        return out.array()
    }
}
