"""Tiny random-initialized Hugging Face checkpoints, built offline from each architecture's
transformers config and saved as a user would (config.json + safetensors + tokenizer.json)."""
from __future__ import annotations

from pathlib import Path

import torch

_DEC = dict(vocab_size=128, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, max_position_embeddings=128, bos_token_id=1, eos_token_id=2, pad_token_id=0)
_ENC = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=80, initializer_range=0.2)  # logits of order 1, not 0.02

# name -> (config class name, kwargs); sliding windows shorter than the tests' sequences
DECODER_CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "llama-3.1-rope": ("LlamaConfig", {"rope_parameters": {"rope_type": "llama3", "rope_theta": 500000.0,
                                                            "factor": 8.0, "low_freq_factor": 1.0,
                                                            "high_freq_factor": 4.0,
                                                            "original_max_position_embeddings": 16}}),
    "mistral": ("MistralConfig", {"sliding_window": 5}),
    "qwen2": ("Qwen2Config", {"tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", {"head_dim": 32}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 16, "sliding_window": 5, "query_pre_attn_scalar": 24,
                                "attn_logit_softcapping": 0.3, "final_logit_softcapping": 0.5}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 16, "sliding_window": 5, "query_pre_attn_scalar": 24,
                                         "layer_types": ["sliding_attention", "full_attention"]}),
    "phi3": ("Phi3Config", {"sliding_window": 7, "tie_word_embeddings": False,
                            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                "partial_rotary_factor": 0.5}}),
}
ENCODER_CONFIGS = {
    "bert": ("BertConfig", {}),
    "roberta": ("RobertaConfig", {"pad_token_id": 1}),
    "xlm-roberta": ("XLMRobertaConfig", {"pad_token_id": 1}),
    "electra": ("ElectraConfig", {"embedding_size": 16}),
    "distilbert": ("DistilBertConfig", {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64}),
    "deberta-v2": ("DebertaV2Config", {"relative_attention": True, "pos_att_type": ["p2c", "c2p"],
                                       "position_buckets": 16, "max_relative_positions": 32}),
}


def hf_config(name: str):
    import transformers

    cls, kw = {**DECODER_CONFIGS, **ENCODER_CONFIGS}[name]
    base = _DEC if name in DECODER_CONFIGS else _ENC
    if cls == "DistilBertConfig":
        base = {"vocab_size": 128, "max_position_embeddings": 80, "initializer_range": 0.2}
    return getattr(transformers, cls)(**{**base, **kw})


def word_tokenizer(vocab_size: int = 128):
    """A word-level tokenizer.json of ``vocab_size`` entries: [PAD] [CLS] [SEP] [UNK], then w4, w5, ..."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {t: i for i, t in enumerate(["[PAD]", "[CLS]", "[SEP]", "[UNK]"])}
    vocab.update({f"w{i}": i for i in range(4, vocab_size)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
    return tok


def save_tiny(name: str, directory: Path, head_labels: list[str] | None = None, seed: int = 0) -> Path:
    """A random model of architecture ``name`` saved to ``directory``; encoders with
    ``head_labels`` are saved as sequence classifiers with those labels."""
    import transformers

    torch.manual_seed(seed)
    cfg = hf_config(name)
    if name in DECODER_CONFIGS:
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    elif head_labels:
        cfg.id2label = dict(enumerate(head_labels))
        cfg.label2id = {v: k for k, v in cfg.id2label.items()}
        model = transformers.AutoModelForSequenceClassification.from_config(cfg)
    else:
        model = transformers.AutoModel.from_config(cfg)
    with torch.no_grad():  # non-trivial norms (some initialize them to exactly 1 or 0)
        for n, p in model.named_parameters():
            if "norm" in n.lower():
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(directory)
    word_tokenizer(cfg.vocab_size).save(str(directory / "tokenizer.json"))
    return directory


def hf_model(directory: Path, classifier: bool = False):
    """The checkpoint as transformers loads it (eager attention, eval mode)."""
    import transformers

    auto = transformers.AutoModelForSequenceClassification if classifier else transformers.AutoModelForCausalLM
    return auto.from_pretrained(str(directory), attn_implementation="eager", dtype=torch.float32).eval()


def write_word_data(directory: Path, n: int = 48, seed: int = 0) -> tuple[Path, Path]:
    """Data in the word tokenizer's words -> (labelled CSV of 3 classes, running text .txt)."""
    import csv
    import random

    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    csv_path, txt_path = directory / "train.csv", directory / "train.txt"
    with csv_path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(n):
            label = "abc"[i % 3]
            words = [f"w{4 + 40 * (i % 3) + rng.randrange(40)}" for _ in range(rng.randrange(3, 12))]
            w.writerow([" ".join(words), label])
    txt_path.write_text(" ".join(f"w{rng.randrange(4, 128)}" for _ in range(600)))
    return csv_path, txt_path
