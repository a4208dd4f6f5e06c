"""Write the LoRA family (LoRA, LoRA-XS, LoRA-SB, LoRA-SP, PiCa) as a Hugging Face PEFT
LoRA adapter: ``adapter_config.json`` + ``adapter_model.safetensors``.

Every such module's update is B' A' (`AdaptedModule.lora_factors`), stored as
lora_B = B' and lora_A = A' with lora_alpha = r per module, so PEFT's scaling is 1.
Trainable embedding rows become PEFT's ``trainable_token_indices`` and fully trained
modules (the head) ``modules_to_save``. The adapter targets the same module names,
so it loads onto the same base model with ``peft.PeftModel.from_pretrained``.
"""
from __future__ import annotations

import json
from pathlib import Path

from edgetune.adapters.embedding_rows import TrainableRowsEmbedding
from edgetune.adapters.registry import AdaptedModule
from edgetune.errors import ConfigError
from edgetune.files import write_atomic

PREFIX = "base_model.model."


def save_peft(prepared, directory: str | Path, base_model_name: str | None = None) -> Path:
    """Write ``prepared``'s adapters in PEFT's LoRA format; methods outside the LoRA family
    (Kronecker, Fastfood, embedding deltas) are refused with the alternatives."""
    from safetensors.torch import save

    model = prepared.model
    tensors, ranks, tokens = {}, {}, {}
    for name, m in model.named_modules():
        if not isinstance(m, AdaptedModule):
            continue
        if isinstance(m, TrainableRowsEmbedding):
            tokens[name.rpartition(".")[2]] = m.token_ids.tolist()
            tensors[f"{PREFIX}{name}.token_adapter.trainable_tokens_delta"] = m.rows.detach()
            continue
        factors = m.lora_factors()
        if factors is None:
            raise ConfigError(f"{name} is adapted by {m.method!r}, which has no LoRA form for PEFT; save it with "
                              "edgetune.adapters.save_adapter or merge it into the base weights")
        b, a = (t.detach().contiguous() for t in factors)
        tensors[f"{PREFIX}{name}.lora_A.weight"], tensors[f"{PREFIX}{name}.lora_B.weight"] = a, b
        ranks[name] = a.shape[0]
    full = [a for a in prepared.report.adapters if a.method == "full"]
    for a in full:
        for mod in a.modules:
            for pname, p in model.get_submodule(mod).named_parameters():
                tensors[f"{PREFIX}{mod}.{pname}"] = p.detach()
    if not ranks:
        raise ConfigError("no LoRA-family adapter to export; PEFT's LoRA format needs at least one low-rank module")
    r = max(ranks.values())
    config = {"peft_type": "LORA", "task_type": None, "base_model_name_or_path": base_model_name,
              "r": r, "lora_alpha": r, "lora_dropout": 0.0, "bias": "none", "target_modules": sorted(ranks),
              "rank_pattern": {n: k for n, k in ranks.items() if k != r},
              "alpha_pattern": {n: k for n, k in ranks.items() if k != r},
              "modules_to_save": [m for a in full for m in a.modules] or None,
              "trainable_token_indices": tokens or None}
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # clone: a shared PiCa M appears under several module names, and safetensors refuses aliases
    write_atomic(d / "adapter_model.safetensors", save({k: v.clone().contiguous() for k, v in tensors.items()}))
    write_atomic(d / "adapter_config.json", json.dumps(config, indent=1).encode())
    return d
