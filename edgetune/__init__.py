"""edgetune: on-device fine-tuning through a training step compiled into an inference graph.

Heavy modules (torch) load on first use, so the torch-free parts
(`edgetune.errors`, `edgetune.contract`, `edgetune.data.text`) serve the device runner.
"""
from edgetune.errors import EdgetuneError, UserInputError

__version__ = "0.1.0"

_LAZY = {
    "prepare": ("edgetune.prepared", "prepare"),
    "PreparedModel": ("edgetune.prepared", "PreparedModel"),
    **{name: ("edgetune.adapters", name) for name in (
        "LoRA", "LoRAXS", "LoRASB", "PiCa", "LoRASP", "Kronecker", "Fastfood", "EmbeddingRows", "EmbeddingDelta",
        "FullyTrainable", "Calibration")},
    "save_adapter": ("edgetune.adapters.io", "save_adapter"),
    "load_adapter": ("edgetune.adapters.io", "load_adapter"),
    "save_peft": ("edgetune.adapters.peft_export", "save_peft"),
    "merge": ("edgetune.adapters.merge", "merge"),
    "compile_step": ("edgetune.step.build", "compile_step"),
    "compile_inference": ("edgetune.step.build", "compile_inference"),
    "AdamW": ("edgetune.step.optimizers", "AdamW"),
    "SGD": ("edgetune.step.optimizers", "SGD"),
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    raise AttributeError(f"module 'edgetune' has no attribute {name!r}")


__all__ = ["EdgetuneError", "UserInputError", *_LAZY]
