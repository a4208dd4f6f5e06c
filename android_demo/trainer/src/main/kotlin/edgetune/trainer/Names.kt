package edgetune.trainer

/** Tensor names of the contract (docs/artifact-contract.md, "Names"). */
object Names {
    const val NEXT_PREFIX = "next."
    const val NOISE_U_PREFIX = "noise.U."
    const val NOISE_V_PREFIX = "noise.V."
    const val NOISE_Z_PREFIX = "noise.z."
    const val LOSS = "loss"
    const val LOGITS = "logits"
    const val LR = "lr"
    const val STEP = "step"
    const val EPS = "eps"
    const val RESAMPLE = "resample"
    val HYPER_INPUTS = listOf(LR, STEP, EPS, RESAMPLE)
    const val INPUT_IDS = "input_ids"
    const val ATTENTION_MASK = "attention_mask"
    const val LABELS = "labels"

    fun next(input: String) = NEXT_PREFIX + input
}
