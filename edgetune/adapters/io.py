"""Save and restore the adapters of a prepared model: ``adapter.safetensors`` + ``adapter_config.json``.

The tensors file holds every trainable tensor and every frozen factor an adapter
created (LoRA-SB's calibrated B and A, PiCa's projections, LoRA-SP's masks,
Fastfood's seeded factors, the token sets), never the base model's own weights. The
config lists the adapter configs in order; restoring applies them with
``restoring=True`` to a fresh base model and loads the tensors, so data-dependent
initialisations are not recomputed. Nothing is unpickled.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from edgetune.adapters.registry import AdaptedModule, config_from_dict
from edgetune.errors import ArtifactError
from edgetune.files import write_atomic

FORMAT, VERSION = "edgetune-adapter", 1
TENSORS, CONFIG = "adapter.safetensors", "adapter_config.json"


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> tensor for the trainable parameters and the adapters' own buffers."""
    adapted = [n for n, m in model.named_modules() if isinstance(m, AdaptedModule)]
    own = lambda key: any(key.startswith(a + ".") and not key.startswith(a + ".base.") for a in adapted)  # noqa: E731
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k in trainable or own(k)}


def save_adapter(prepared, directory: str | Path, base: dict | None = None) -> Path:
    """Write the adapters of ``prepared`` (a `PreparedModel`) to ``directory``; ``base``
    describes the base model (free-form, e.g. {"name": "minilm", "num_labels": 77})."""
    from safetensors.torch import save

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    config = {"format": FORMAT, "version": VERSION, "base": base or {},
              "adapters": [a.config for a in prepared.report.adapters],
              "trainable_params": prepared.report.trainable_params}
    write_atomic(d / TENSORS, save(adapter_tensors(prepared.model)))
    write_atomic(d / CONFIG, json.dumps(config, indent=1).encode())
    return d


def read_adapter_config(directory: str | Path) -> dict:
    p = Path(directory) / CONFIG
    try:
        config = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ArtifactError(f"{p} is missing or not JSON ({e}); save adapters with edgetune.adapters.save_adapter") from e
    if config.get("format") != FORMAT or config.get("version") != VERSION:
        raise ArtifactError(f"{p} is not an {FORMAT} v{VERSION} config (format={config.get('format')!r}, "
                            f"version={config.get('version')!r})")
    return config


def load_adapter(model: nn.Module, directory: str | Path):
    """Attach the adapters saved in ``directory`` to ``model`` (a fresh base model, modified
    in place) -> `PreparedModel`. Every saved tensor must fit, else `ArtifactError`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from edgetune.prepared import prepare

    d = Path(directory)
    config = read_adapter_config(d)
    prepared = prepare(model, [config_from_dict(c) for c in config["adapters"]], restoring=True)
    try:
        tensors = load_file(d / TENSORS)
    except (OSError, SafetensorError) as e:
        raise ArtifactError(f"{d / TENSORS} cannot be read ({e})") from e
    load_tensors(prepared.model, tensors, str(d / TENSORS))
    return prepared


def load_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy ``tensors`` into the model's adapter tensors; names and shapes must match exactly."""
    want = adapter_tensors(model)
    missing, extra = sorted(set(want) - set(tensors)), sorted(set(tensors) - set(want))
    if missing or extra:
        raise ArtifactError(f"{source} does not fit this model: missing {missing[:4]}, unexpected {extra[:4]}. "
                            "Restore onto the same base model with the same adapter configs.")
    for k, v in want.items():
        if tensors[k].shape != v.shape or tensors[k].dtype != v.dtype:
            raise ArtifactError(f"{source}: {k} is {tensors[k].dtype}{list(tensors[k].shape)}, "
                                f"the model expects {v.dtype}{list(v.shape)}")
    model.load_state_dict(tensors, strict=False)
