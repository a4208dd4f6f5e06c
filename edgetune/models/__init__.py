"""Model loaders. Every model maps (input_ids [B,S] int64, attention_mask [B,S] int64) to logits
and carries ``task``: 'sequence_classification' -> [B, C], 'causal_lm' -> [B, S, V]."""
