import torch

from edgetune import EmbeddingRows, prepare
from edgetune.models.tiny import TinyClassifier


def test_embedding_rows_equal_index_copy(batch):
    m = TinyClassifier()
    table = m.encoder.word_embeddings.weight.detach().clone()
    p = prepare(m, [EmbeddingRows(token_ids=[5, 3, 3, 9])])
    wrapped = p.model.encoder.word_embeddings
    assert wrapped.rows.shape == (3, 32) and p.report.trainable_params == 3 * 32
    ids = batch["input_ids"]
    with torch.no_grad():
        assert torch.equal(wrapped(ids), table[ids])  # no-op at init
        wrapped.rows.add_(1.0)
        merged = table.index_copy(0, torch.tensor([3, 5, 9]), table[[3, 5, 9]] + 1.0)
        assert torch.equal(wrapped(ids), merged[ids])
        torch.testing.assert_close(table + wrapped.delta_weight(), merged)
