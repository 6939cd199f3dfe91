"""Packed real tokens (``xstilts.export.packing``): the encoder's numbers on real tokens are the padded ones."""
from __future__ import annotations

import pytest
import torch


def _tiny(kind: str, **extra):
    from transformers import BertConfig, BertModel, XLMRobertaConfig, XLMRobertaModel

    config_cls, model_cls = {"bert": (BertConfig, BertModel), "xlmr": (XLMRobertaConfig, XLMRobertaModel)}[kind]
    torch.manual_seed(0)
    config = config_cls(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, pad_token_id=1, **extra)
    return model_cls(config).eval()


def _batch(lengths, width=None):
    width = width or max(lengths)
    ids = torch.randint(5, 120, (len(lengths), width), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    return ids.masked_fill(mask == 0, 1), mask


@pytest.mark.parametrize("kind", ["bert", "xlmr"])
def test_packed_encoder_gives_real_tokens_the_padded_numbers_and_zeros_at_padding(kind):
    from xstilts.export.graphs import eager_attention
    from xstilts.export.packing import packed_tokens

    model = _tiny(kind)
    ids, mask = _batch([3, 9, 1, 6], width=10)  # a row of one token; every row padded
    with torch.no_grad(), eager_attention(model):
        padded = model(input_ids=ids, attention_mask=mask).last_hidden_state
        with packed_tokens(model):
            packed = model(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    assert packed.shape == padded.shape
    torch.testing.assert_close(packed[real], padded[real], atol=1e-5, rtol=0)
    assert packed[~real].abs().max() == 0


def test_packing_is_undone_after_the_block_and_after_an_error():
    from xstilts.export.packing import packed_tokens

    model = _tiny("xlmr")
    attentions = [layer.attention.self for layer in model.encoder.layer]
    with pytest.raises(RuntimeError, match="inside"):
        with packed_tokens(model):
            assert type(model.encoder.layer[0].attention.self).__name__ == "_PackedSelfAttention"
            raise RuntimeError("inside")
    assert [layer.attention.self for layer in model.encoder.layer] == attentions
    assert not model._forward_pre_hooks and not model.encoder._forward_pre_hooks and not model.encoder._forward_hooks
    ids, mask = _batch([4, 2])
    with torch.no_grad():
        assert model(input_ids=ids, attention_mask=mask).last_hidden_state.shape == (2, 4, 32)


def test_only_bert_family_encoders_are_packable():
    from torch import nn

    from xstilts.export.packing import packable, packed_tokens

    assert packable(_tiny("bert")) and packable(_tiny("xlmr"))
    assert not packable(_tiny("bert", is_decoder=True))
    assert not packable(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="Linear: not a BERT-family encoder"):
        with packed_tokens(nn.Linear(3, 3)):
            pass


def test_a_sentence_embedding_graph_stays_padded_and_a_head_graph_packs():
    """The embedding graph reads hidden layers that packing does not unpack: it keeps the padded form."""
    from xstilts.export.graphs import EmbeddingGraph, HeadGraph, packs_tokens
    from xstilts.models.multitask import HeadSpec, XstiltsModel

    model = XstiltsModel(_tiny("xlmr"), [HeadSpec("panx", "tagging", 7)])
    assert packs_tokens(HeadGraph(model, "panx"))
    assert not packs_tokens(EmbeddingGraph(model.encoder, layer=1))
