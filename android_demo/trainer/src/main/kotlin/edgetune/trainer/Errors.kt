package edgetune.trainer

/** Root of every error the trainer reports on purpose; the message names the value and the fix. */
open class EdgetuneException(message: String) : Exception(message)

/** An artifact directory is missing files, malformed, or mixed up with another one. */
class ArtifactException(message: String) : EdgetuneException(message)

/** A state file is missing, corrupt, or does not belong to the artifact. */
class StateException(message: String) : EdgetuneException(message)

/** A data file or a text cannot be turned into a batch. */
class DataException(message: String) : EdgetuneException(message)

/** A run option (learning rate, schedule, steps) is out of range. */
class ConfigException(message: String) : EdgetuneException(message)

/** A step produced NaN/Inf; the state and the step count were kept. */
class NonFiniteStepException(message: String) : EdgetuneException(message)

/** An untrusted value, quoted and cut to about [limit] characters for a message. */
internal fun shorten(value: Any?, limit: Int = 80): String {
    val r = if (value is String) "'$value'" else value.toString()
    return if (r.length <= limit) r else "${r.take(limit)}... (${r.length} characters)"
}
