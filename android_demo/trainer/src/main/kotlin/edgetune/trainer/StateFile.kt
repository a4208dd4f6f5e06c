package edgetune.trainer

import java.io.File
import java.io.IOException
import java.nio.channels.FileChannel
import java.nio.channels.FileLock
import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.StandardCopyOption
import java.nio.file.StandardOpenOption
import java.security.MessageDigest

/**
 * State files (docs/artifact-contract.md, section 5): safetensors with one tensor per state
 * input and the metadata `artifact_id`, `step` and `sha256`; checked the same way on load and
 * before every save, and written atomically.
 */
object StateFile {
    /** sha256 over the tensors in the order of their names' UTF-8 bytes: name, 0, dtype, 0, shape, 0, bytes. */
    fun checksum(tensors: Map<String, Tensor>): String {
        val md = MessageDigest.getInstance("SHA-256")
        val names = tensors.keys.map { it to it.toByteArray(Charsets.UTF_8) }.sortedWith { a, b -> compareBytes(a.second, b.second) }
        for ((name, utf8) in names) {
            val t = tensors.getValue(name)
            md.update(utf8); md.update(0)
            md.update(t.dtype.safetensorsName.toByteArray()); md.update(0)
            md.update(t.shape.joinToString(",").toByteArray()); md.update(0)
            md.update(t.bytes)
        }
        return Manifest.hex(md.digest())
    }

    private fun compareBytes(a: ByteArray, b: ByteArray): Int {
        for (i in 0 until minOf(a.size, b.size)) {
            val d = (a[i].toInt() and 0xff) - (b[i].toInt() and 0xff)
            if (d != 0) return d
        }
        return a.size - b.size
    }

    /**
     * Parse and check the bytes of a state file -> (tensors by input name, steps taken).
     * [initial]: the artifact's own state.safetensors, which carries no artifact_id.
     */
    fun check(raw: ByteArray, manifest: Manifest, where: String, initial: Boolean = false): Pair<Map<String, Tensor>, Long> {
        val contents = try {
            Safetensors.decode(raw)
        } catch (e: RuntimeException) {  // IllegalArgumentException, ClassCastException of a malformed header
            throw StateException("state file $where is corrupt or not safetensors (${e.message?.take(120)}); restore it from a backup or start again from the artifact's state.safetensors")
        }
        val meta = contents.metadata
        val owner = meta["artifact_id"]
        if (if (initial) owner != null else owner != manifest.artifactId) {
            throw StateException("state file $where belongs to artifact ${shorten(owner)}, not to this one ('${manifest.artifactId}'); use the state written for this artifact")
        }
        val specs = manifest.stateSpecs()
        val extra = contents.tensors.keys - specs.map { it.name }.toSet()
        if (extra.isNotEmpty()) throw StateException("state file $where holds tensors the manifest does not list: ${shorten(extra.sorted())}")
        for (s in specs) {
            val t = contents.tensors[s.name] ?: throw StateException("state file $where lacks tensor ${shorten(s.name)}; it does not match the manifest")
            if (t.shapeList() != s.shape || t.dtype != s.dtype) {
                throw StateException("state tensor ${shorten(s.name)} in $where is ${t.dtype.manifestName}${t.shapeList()}, the manifest says ${s.dtype.manifestName}${s.shape}")
            }
            if (!t.isFinite()) throw StateException("state tensor ${shorten(s.name)} in $where holds NaN/Inf; restore an earlier state")
        }
        val step = meta["step"]
        if (step == null || step.isEmpty() || step.length > 16 || !step.all { it in '0'..'9' } || step.toLong() > Manifest.MAX_WHOLE) {
            throw StateException("state file $where has step counter ${shorten(step)}, not a whole number of steps; restore it from a backup")
        }
        if (meta["sha256"] != checksum(contents.tensors)) {
            throw StateException("state file $where does not match its checksum: its tensors were changed or damaged after it was written; restore it from a backup or start again from state.safetensors")
        }
        return specs.associate { it.name to contents.tensors.getValue(it.name) } to step.toLong()
    }

    /** Read [file] and [check] it. */
    fun load(file: File, manifest: Manifest, initial: Boolean = false): Pair<Map<String, Tensor>, Long> {
        if (!file.isFile) throw StateException("state file $file does not exist; start from the artifact's state.safetensors or pass the path of a state written by an earlier run")
        val limit = Safetensors.MAX_HEADER_BYTES + 8 + manifest.stateSpecs().sumOf { Tensor.count(it.shapeArray) * it.dtype.size }
        if (file.length() > limit) throw StateException("state file $file is ${file.length()} bytes, more than this artifact's state can take ($limit); it is not a state of this artifact")
        val raw = try { file.readBytes() } catch (e: IOException) { throw StateException("cannot read state file $file: ${e.message}") }
        return check(raw, manifest, file.toString(), initial)
    }

    /** The bytes of a state file, checked by [check] exactly as a load would check them. */
    fun encode(tensors: Map<String, Tensor>, manifest: Manifest, step: Long): ByteArray {
        val meta = mapOf("step" to step.toString(), "sha256" to checksum(tensors), "artifact_id" to manifest.artifactId)
        val raw = Safetensors.encode(tensors, meta)
        check(raw, manifest, "about to be written")
        return raw
    }

    /** Check, then write atomically: a crash at any point leaves the old file or the new one. */
    fun save(file: File, tensors: Map<String, Tensor>, manifest: Manifest, step: Long) = writeAtomic(file, encode(tensors, manifest, step))

    /** Write [data] to a temporary file beside [file], fsync it, rename it over [file], fsync the directory. */
    fun writeAtomic(file: File, data: ByteArray) {
        val dir = file.absoluteFile.parentFile
        dir.mkdirs()
        val tmp = File.createTempFile(".${file.name}.", ".tmp", dir)
        try {
            FileChannel.open(tmp.toPath(), StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING).use { ch ->
                val buf = java.nio.ByteBuffer.wrap(data)
                while (buf.hasRemaining()) ch.write(buf)
                ch.force(true)
            }
            try {
                Files.move(tmp.toPath(), file.toPath(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING)
            } catch (e: AtomicMoveNotSupportedException) {
                throw StateException("cannot replace $file atomically on this file system (${e.message}); write the state to a local directory")
            }
            try {  // the rename itself must reach the disk; not every platform can open a directory
                FileChannel.open(dir.toPath(), StandardOpenOption.READ).use { it.force(true) }
            } catch (_: IOException) {
            }
        } finally {
            if (tmp.exists()) tmp.delete()
        }
    }

    /** Remove the temporaries a killed writer of [file] left (`.<name>.*.tmp` beside it); call under the lock. */
    fun removeStaleTemporaries(file: File): List<File> {
        val dir = file.absoluteFile.parentFile ?: return emptyList()
        val stale = dir.listFiles { f -> f.isFile && f.name.startsWith(".${file.name}.") && f.name.endsWith(".tmp") }?.toList() ?: emptyList()
        stale.forEach { it.delete() }
        return stale
    }

    /** An exclusive lock on `<state>.lock`, so one run at a time writes a state; waits up to [timeoutMs]. */
    fun lock(file: File, timeoutMs: Long): FileLock {
        val lockFile = File(file.absoluteFile.parentFile, file.name + ".lock")
        lockFile.parentFile.mkdirs()
        val ch = FileChannel.open(lockFile.toPath(), StandardOpenOption.CREATE, StandardOpenOption.WRITE)
        val deadline = System.nanoTime() + timeoutMs * 1_000_000
        while (true) {
            val l = try { ch.tryLock() } catch (e: java.nio.channels.OverlappingFileLockException) { null }
            if (l != null) return l
            if (System.nanoTime() > deadline) {
                ch.close()
                throw ConfigException("another run holds $lockFile after ${timeoutMs / 1000} s; stop it or pass another state path")
            }
            Thread.sleep(200)
        }
    }
}
