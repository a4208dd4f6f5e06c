"""Write the LoRA family (LoRA, LoRA-XS, LoRA-SB, LoRA-SP, PiCa) as a Hugging Face PEFT
LoRA adapter: ``adapter_config.json`` + ``adapter_model.safetensors``.

Each module's update is stored as PEFT's lora_B, lora_A and lora_alpha
(`AdaptedModule.peft_factors`): LoRA as trained (its own alpha); the other methods as
B' A' with lora_alpha = r, so PEFT's scaling is 1 and B' carries the method's scales
(said in ``edgetune.json``). Trainable embedding rows become PEFT's
``trainable_token_indices`` and fully trained modules ``modules_to_save``.

A model that wraps a Hugging Face model (``hf_base``: the attribute holding it, e.g. the
classifier's ``encoder``) gets an adapter for that Hugging Face model as a user loads it
(``AutoModel.from_pretrained``), with its module names and ``base_model_name_or_path``
(``hf_source``); the modules around it (a classifier's head) are written to
``head.safetensors`` and described, with pooling and labels, in ``edgetune.json``.
Other models keep their own module names.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from edgetune.adapters.embedding_rows import TrainableRowsEmbedding
from edgetune.adapters.registry import AdaptedModule
from edgetune.errors import ConfigError
from edgetune.files import write_atomic

PREFIX = "base_model.model."
SIDECAR, HEAD_FILE = "edgetune.json", "head.safetensors"


def save_peft(prepared, directory: str | Path, base_model_name: str | None = None,
              labels: list[str] | None = None) -> Path:
    """Write ``prepared``'s adapters in PEFT's LoRA format; methods outside the LoRA family
    (Kronecker, Fastfood, embedding deltas) are refused with the alternatives. ``labels``:
    the classifier's label order (index -> name), written as ``id2label``."""
    from safetensors.torch import save

    model = prepared.model
    inner = getattr(model, "hf_base", None)
    strip = f"{inner}." if inner else ""

    def peft_name(name: str) -> str | None:
        """The module's name in the Hugging Face model, or None if it lies outside it."""
        return name[len(strip):] if name.startswith(strip) else None

    tensors, ranks, alphas, tokens, prescaled, head = {}, {}, {}, {}, [], {}
    for name, m in model.named_modules():
        if not isinstance(m, AdaptedModule):
            continue
        hf = peft_name(name)
        if hf is None:
            raise ConfigError(f"{name} is adapted but lies outside the Hugging Face model {inner!r}; PEFT cannot "
                              "hold it: save it with `edgetune save-adapter` without --peft")
        if isinstance(m, TrainableRowsEmbedding):
            tokens[hf.rpartition(".")[2]] = m.token_ids.tolist()
            tensors[f"{PREFIX}{hf}.token_adapter.trainable_tokens_delta"] = m.rows.detach()
            continue
        factors = m.peft_factors()
        if factors is None:
            raise ConfigError(f"{name} is adapted by {m.method!r}, which has no LoRA form for PEFT; save it in "
                              "edgetune's format (`edgetune save-adapter` without --peft, or "
                              "edgetune.adapters.save_adapter) or fold it into the base weights (`edgetune merge`)")
        b, a, alphas[hf] = factors
        tensors[f"{PREFIX}{hf}.lora_A.weight"], tensors[f"{PREFIX}{hf}.lora_B.weight"] = a.detach(), b.detach()
        ranks[hf] = a.shape[0]
        if m.method != "lora":
            prescaled.append(hf)
    if not ranks:
        raise ConfigError("no LoRA-family adapter to export; PEFT's LoRA format needs at least one low-rank module")
    to_save = []
    for mod in (mod for a in prepared.report.adapters if a.method == "full" for mod in a.modules):
        hf = peft_name(mod)
        for pname, p in model.get_submodule(mod).named_parameters():
            if hf is None:
                head[f"{mod}.{pname}"] = p.detach()
            else:
                tensors[f"{PREFIX}{hf}.{pname}"] = p.detach()
        if hf is not None:
            to_save.append(hf)
    r = Counter(ranks.values()).most_common(1)[0][0]
    alpha = Counter(alphas.values()).most_common(1)[0][0]
    config = {"peft_type": "LORA", "task_type": None,
              "base_model_name_or_path": getattr(model, "hf_source", None) or base_model_name,
              "r": r, "lora_alpha": alpha, "lora_dropout": 0.0, "bias": "none", "target_modules": sorted(ranks),
              "rank_pattern": {n: k for n, k in ranks.items() if k != r},
              "alpha_pattern": {n: k for n, k in alphas.items() if k != alpha},
              "modules_to_save": to_save or None, "trainable_token_indices": tokens or None}
    sidecar = {"base_model": config["base_model_name_or_path"]}
    if inner:
        sidecar["load"] = "transformers.AutoModel.from_pretrained(base_model), then peft.PeftModel.from_pretrained"
    if head:
        sidecar.update(head_file=HEAD_FILE, head_modules=sorted(head), pooling=getattr(model, "pooling", None))
    if labels:
        sidecar["id2label"] = {str(i): name for i, name in enumerate(labels)}
    if prescaled:
        sidecar["note"] = ("lora_B of these modules carries the method's scales (lora_alpha = r, so PEFT's scaling "
                           "is 1): " + ", ".join(sorted(prescaled)))
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    # clone: a shared PiCa M appears under several module names, and safetensors refuses aliases
    write_atomic(d / "adapter_model.safetensors", save({k: v.clone().contiguous() for k, v in tensors.items()}))
    if head:
        write_atomic(d / HEAD_FILE, save({k: v.clone().contiguous() for k, v in head.items()}))
    write_atomic(d / "adapter_config.json", json.dumps(config, indent=1).encode())
    write_atomic(d / SIDECAR, json.dumps(sidecar, indent=1).encode())
    return d
