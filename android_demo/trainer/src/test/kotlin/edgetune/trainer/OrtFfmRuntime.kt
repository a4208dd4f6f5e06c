package edgetune.trainer

import java.io.File
import java.lang.foreign.Arena
import java.lang.foreign.FunctionDescriptor
import java.lang.foreign.Linker
import java.lang.foreign.MemoryLayout
import java.lang.foreign.MemorySegment
import java.lang.foreign.SymbolLookup
import java.lang.foreign.ValueLayout.ADDRESS
import java.lang.foreign.ValueLayout.JAVA_BYTE
import java.lang.foreign.ValueLayout.JAVA_INT
import java.lang.foreign.ValueLayout.JAVA_LONG
import java.lang.invoke.MethodHandle

/**
 * A test-side [Runtime]: ONNX Runtime's C API (`libonnxruntime.so`, as shipped in the npm package
 * onnxruntime-node) called through Java's foreign-function API, so the trainer's JVM tests run on
 * a real ONNX Runtime where no ONNX Runtime Java package can be installed. Apps use
 * `ai.onnxruntime` instead (android_demo/app). It does what the Python runner's ONNX program
 * does: all of ORT's graph optimizations, no memory-pattern planning, the manifest's session
 * config entries, intra-op threads as asked and one inter-op thread.
 */
class OrtFfmRuntime(library: File) : Runtime {
    override val name = "onnx"
    private val linker = Linker.nativeLinker()
    private val handles = java.util.concurrent.ConcurrentHashMap<Int, MethodHandle>()
    private val api: MemorySegment
    private val env: MemorySegment
    private val cpu: MemorySegment
    private val allocator: MemorySegment

    init {
        val lookup = SymbolLookup.libraryLookup(library.toPath(), Arena.global())
        val getBase = linker.downcallHandle(lookup.find("OrtGetApiBase").orElseThrow(), FunctionDescriptor.of(ADDRESS))
        val base = (getBase.invokeWithArguments() as MemorySegment).reinterpret(16)
        val getApi = linker.downcallHandle(base.get(ADDRESS, 0), FunctionDescriptor.of(ADDRESS, JAVA_INT))
        api = (getApi.invokeWithArguments(API_VERSION) as MemorySegment).reinterpret(8L * 256)
        if (api == MemorySegment.NULL) error("$library does not offer ONNX Runtime C API version $API_VERSION")
        env = out { call(CREATE_ENV, JAVA_INT, ADDRESS, ADDRESS)(3, cstr(Arena.global(), "edgetune"), it) }  // 3: errors only
        cpu = out { call(CREATE_CPU_MEMORY_INFO, JAVA_INT, JAVA_INT, ADDRESS)(1, 0, it) }  // arena allocator, default memory
        allocator = out { call(GET_ALLOCATOR, ADDRESS)(it) }
    }

    /** A C API function by its index in the OrtApi table, returning an OrtStatus*; the call checks it. */
    private fun call(index: Int, vararg args: MemoryLayout) = Fn(handle(index, FunctionDescriptor.of(ADDRESS, *args)))

    private inner class Fn(private val h: MethodHandle) {
        operator fun invoke(vararg a: Any) = check(h.invokeWithArguments(*a) as MemorySegment)
    }

    /** The downcall handle of a table entry, made once (making one costs far more than a call). */
    private fun handle(index: Int, d: FunctionDescriptor): MethodHandle =
        handles.getOrPut(index) { linker.downcallHandle(api.getAtIndex(ADDRESS, index.toLong()), d) }

    private fun release(index: Int, p: MemorySegment) {
        if (p != MemorySegment.NULL) handle(index, FunctionDescriptor.ofVoid(ADDRESS)).invokeWithArguments(p)
    }

    private fun check(status: MemorySegment) {
        if (status == MemorySegment.NULL) return
        val msg = (handle(GET_ERROR_MESSAGE, FunctionDescriptor.of(ADDRESS, ADDRESS)).invokeWithArguments(status) as MemorySegment)
            .reinterpret(1 shl 16).getString(0)
        release(RELEASE_STATUS, status)
        throw ArtifactException("onnxruntime: $msg")
    }

    /** Call [f] with a pointer-sized out parameter and return what it wrote. */
    private fun out(f: (MemorySegment) -> Unit): MemorySegment = Arena.ofConfined().use { a ->
        val p = a.allocate(ADDRESS)
        f(p)
        p.get(ADDRESS, 0)
    }

    private fun cstr(a: Arena, s: String): MemorySegment = a.allocateFrom(s)

    override fun open(file: File, spec: ProgramSpec, threads: Int?): Program {
        val opts = out { call(CREATE_SESSION_OPTIONS, ADDRESS)(it) }
        try {
            Arena.ofConfined().use { a ->
                call(SET_GRAPH_OPTIMIZATION_LEVEL, ADDRESS, JAVA_INT)(opts, 99)
                call(DISABLE_MEM_PATTERN, ADDRESS)(opts)
                for ((k, v) in spec.onnxSessionConfig()) call(ADD_SESSION_CONFIG_ENTRY, ADDRESS, ADDRESS, ADDRESS)(opts, cstr(a, k), cstr(a, v))
                if (threads != null) {
                    call(SET_INTRA_OP_THREADS, ADDRESS, JAVA_INT)(opts, threads)
                    call(SET_INTER_OP_THREADS, ADDRESS, JAVA_INT)(opts, 1)
                }
                val session = try {
                    out { call(CREATE_SESSION, ADDRESS, ADDRESS, ADDRESS, ADDRESS)(env, cstr(a, file.path), opts, it) }
                } catch (e: ArtifactException) {
                    throw ArtifactException("onnxruntime cannot load $file: ${e.message}")
                }
                val program = OrtProgram(session, spec)
                checkSignature(file, spec, "inputs", program.signature(false))
                checkSignature(file, spec, "outputs", program.signature(true))
                return program
            }
        } finally {
            release(RELEASE_SESSION_OPTIONS, opts)
        }
    }

    private inner class OrtProgram(private val session: MemorySegment, override val spec: ProgramSpec) : Program {
        fun signature(outputs: Boolean): List<Signature> {
            val n = Arena.ofConfined().use { a ->
                val p = a.allocate(JAVA_LONG)
                call(if (outputs) SESSION_OUTPUT_COUNT else SESSION_INPUT_COUNT, ADDRESS, ADDRESS)(session, p)
                p.get(JAVA_LONG, 0)
            }
            return (0 until n).map { i ->
                val namePtr = out { call(if (outputs) SESSION_OUTPUT_NAME else SESSION_INPUT_NAME, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS)(session, i, allocator, it) }
                val name = namePtr.reinterpret(1 shl 16).getString(0)
                call(ALLOCATOR_FREE, ADDRESS, ADDRESS)(allocator, namePtr)
                val typeInfo = out { call(if (outputs) SESSION_OUTPUT_TYPE_INFO else SESSION_INPUT_TYPE_INFO, ADDRESS, JAVA_LONG, ADDRESS)(session, i, it) }
                try {
                    val info = out { call(CAST_TYPE_INFO_TO_TENSOR_INFO, ADDRESS, ADDRESS)(typeInfo, it) }
                    Arena.ofConfined().use { a ->
                        val t = a.allocate(JAVA_INT)
                        call(GET_TENSOR_ELEMENT_TYPE, ADDRESS, ADDRESS)(info, t)
                        val c = a.allocate(JAVA_LONG)
                        call(GET_DIMENSIONS_COUNT, ADDRESS, ADDRESS)(info, c)
                        val rank = c.get(JAVA_LONG, 0)
                        val dims = a.allocate(JAVA_LONG, maxOf(1L, rank))
                        call(GET_DIMENSIONS, ADDRESS, ADDRESS, JAVA_LONG)(info, dims, rank)
                        Signature(name, ELEMENT_TYPES[t.get(JAVA_INT, 0)],
                            (0 until rank).map { d -> dims.getAtIndex(JAVA_LONG, d).takeIf { it >= 0 } })
                    }
                } finally {
                    release(RELEASE_TYPE_INFO, typeInfo)
                }
            }
        }

        override fun run(inputs: List<Tensor>): List<Tensor> = Arena.ofConfined().use { a ->
            val n = inputs.size
            val names = a.allocate(ADDRESS, n.toLong())
            val values = a.allocate(ADDRESS, n.toLong())
            val outNames = a.allocate(ADDRESS, spec.outputs.size.toLong())
            val outs = a.allocate(ADDRESS, spec.outputs.size.toLong())
            try {
                for ((i, t) in inputs.withIndex()) {
                    names.setAtIndex(ADDRESS, i.toLong(), cstr(a, spec.inputs[i].name))
                    val data = a.allocate(maxOf(1L, t.bytes.size.toLong()), 8)
                    MemorySegment.copy(t.bytes, 0, data, JAVA_BYTE, 0, t.bytes.size)
                    val shape = a.allocate(JAVA_LONG, maxOf(1L, t.shape.size.toLong()))
                    t.shape.forEachIndexed { d, v -> shape.setAtIndex(JAVA_LONG, d.toLong(), v) }
                    values.setAtIndex(ADDRESS, i.toLong(), out {
                        call(CREATE_TENSOR_WITH_DATA, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS)(
                            cpu, data, t.bytes.size.toLong(), shape, t.shape.size.toLong(), ONNX_TYPE.getValue(t.dtype), it)
                    })
                }
                spec.outputs.forEachIndexed { i, o -> outNames.setAtIndex(ADDRESS, i.toLong(), cstr(a, o.name)) }
                call(RUN, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS, JAVA_LONG, ADDRESS)(
                    session, MemorySegment.NULL, names, values, n.toLong(), outNames, spec.outputs.size.toLong(), outs)
                spec.outputs.indices.map { i -> read(outs.getAtIndex(ADDRESS, i.toLong()), spec.outputs[i].dtype) }
            } finally {
                for (i in 0 until n) release(RELEASE_VALUE, values.getAtIndex(ADDRESS, i.toLong()))
                for (i in spec.outputs.indices) release(RELEASE_VALUE, outs.getAtIndex(ADDRESS, i.toLong()))
            }
        }

        private fun read(value: MemorySegment, dtype: DType): Tensor {
            val info = out { call(GET_TENSOR_TYPE_AND_SHAPE, ADDRESS, ADDRESS)(value, it) }
            val shape = try {
                Arena.ofConfined().use { a ->
                    val c = a.allocate(JAVA_LONG)
                    call(GET_DIMENSIONS_COUNT, ADDRESS, ADDRESS)(info, c)
                    val rank = c.get(JAVA_LONG, 0)
                    val dims = a.allocate(JAVA_LONG, maxOf(1L, rank))
                    call(GET_DIMENSIONS, ADDRESS, ADDRESS, JAVA_LONG)(info, dims, rank)
                    LongArray(rank.toInt()) { dims.getAtIndex(JAVA_LONG, it.toLong()) }
                }
            } finally {
                release(RELEASE_TENSOR_TYPE_AND_SHAPE, info)
            }
            val bytes = Tensor.count(shape) * dtype.size
            val data = out { call(GET_TENSOR_MUTABLE_DATA, ADDRESS, ADDRESS)(value, it) }.reinterpret(bytes)
            return Tensor(dtype, shape, data.toArray(JAVA_BYTE))
        }

        override fun close() = release(RELEASE_SESSION, session)
    }

    private companion object {
        const val API_VERSION = 17  // any version the library still offers; the table only grows
        // indices of the functions in the OrtApi table (onnxruntime_c_api.h; the order never changes)
        const val GET_ERROR_MESSAGE = 2
        const val CREATE_ENV = 3
        const val CREATE_SESSION = 7
        const val RUN = 9
        const val CREATE_SESSION_OPTIONS = 10
        const val DISABLE_MEM_PATTERN = 17
        const val SET_GRAPH_OPTIMIZATION_LEVEL = 23
        const val SET_INTRA_OP_THREADS = 24
        const val SET_INTER_OP_THREADS = 25
        const val SESSION_INPUT_COUNT = 30
        const val SESSION_OUTPUT_COUNT = 31
        const val SESSION_INPUT_TYPE_INFO = 33
        const val SESSION_OUTPUT_TYPE_INFO = 34
        const val SESSION_INPUT_NAME = 36
        const val SESSION_OUTPUT_NAME = 37
        const val CREATE_TENSOR_WITH_DATA = 49
        const val GET_TENSOR_MUTABLE_DATA = 51
        const val CAST_TYPE_INFO_TO_TENSOR_INFO = 55
        const val GET_TENSOR_ELEMENT_TYPE = 60
        const val GET_DIMENSIONS_COUNT = 61
        const val GET_DIMENSIONS = 62
        const val GET_TENSOR_TYPE_AND_SHAPE = 65
        const val CREATE_CPU_MEMORY_INFO = 69
        const val ALLOCATOR_FREE = 76
        const val GET_ALLOCATOR = 78
        const val RELEASE_STATUS = 93
        const val RELEASE_SESSION = 95
        const val RELEASE_VALUE = 96
        const val RELEASE_TYPE_INFO = 98
        const val RELEASE_TENSOR_TYPE_AND_SHAPE = 99
        const val RELEASE_SESSION_OPTIONS = 100
        const val ADD_SESSION_CONFIG_ENTRY = 130
        val ONNX_TYPE = mapOf(DType.FLOAT32 to 1, DType.INT32 to 6, DType.INT64 to 7, DType.BOOL to 9)
        val ELEMENT_TYPES = ONNX_TYPE.entries.associate { (k, v) -> v to k }
    }
}
