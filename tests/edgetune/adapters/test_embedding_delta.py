import torch

from edgetune import prepare
from edgetune.adapters import EmbeddingDelta
from edgetune.models.tiny import TinyClassifier


def test_lowrank_and_fastfood_deltas_touch_only_the_token_set(batch):
    ids = batch["input_ids"]
    tokens = sorted(set(ids[1].tolist()))
    for cfg, count in ((EmbeddingDelta(tokens, kind="lowrank", r=2, alpha=4.0), (len(tokens) + 32) * 2),
                       (EmbeddingDelta(tokens, kind="fastfood", d_int=24), 24)):
        m = TinyClassifier()
        table = m.encoder.word_embeddings.weight.detach().clone()
        p = prepare(m, [cfg])
        emb = p.model.encoder.word_embeddings
        assert p.report.trainable_params == count
        with torch.no_grad():
            assert torch.equal(emb(ids), table[ids])  # no-op at init
            for t in p.trainable().values():
                t.normal_()
            delta = emb.row_delta()
            if cfg.kind == "lowrank":
                torch.testing.assert_close(delta, 2.0 * emb.delta_A @ emb.delta_B)
            else:
                torch.testing.assert_close(delta.reshape(-1), emb.transform.dense() @ emb.ff_d, rtol=1e-4, atol=1e-5)
            merged = table.index_add(0, torch.tensor(tokens), delta)
            torch.testing.assert_close(emb(ids), merged[ids])
            torch.testing.assert_close(table + emb.delta_weight(), merged)
