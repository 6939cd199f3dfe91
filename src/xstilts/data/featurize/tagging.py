"""Word-level tagging (UD-POS, PAN-X): one label per word, on its first sub-token.

Which sub-token is "first" is the alignment (:data:`TAG_ALIGNMENTS`):

* ``first_subtoken`` (XTREME's ``run_tag.py`` convention, the default): the word's first
  piece, whatever it is. With SentencePiece and ``is_split_into_words=True`` a word whose
  text does not start with a vocabulary piece of its own gets a lone ``▁`` piece first:
  every Chinese word does (``同樣 ， 施力`` -> ``▁ 同樣 ▁ , ▁ 施 力``), so every label of the
  sentence sits on the same ``▁`` token and the model cannot tell the words apart there.
* ``first_content``: a lone ``▁`` that opens a word of several pieces is left out of the word
  (no label, no prediction; it stays in the input), so the label sits on the first piece
  that carries the word's characters. Words tokenized without a lone ``▁`` are unchanged.

Words come pre-split, so they are encoded with ``is_split_into_words=True``.
A sentence longer than ``max_length`` is split into consecutive windows of whole
words instead of being truncated: every word lands in exactly one window and has
exactly one labelled position there. A single word that does not fit in a window
on its own is an error naming the example.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from xstilts.data.examples import TaggingExample
from xstilts.data.featurize.base import (
    IGNORE_INDEX,
    TOKENIZE_CHUNK,
    FeaturizationError,
    TaggingFeature,
    collate_inputs,
    label_index,
    padded_length,
    pad_rows,
    to_ids,
    token_types,
)


FIRST_SUBTOKEN, FIRST_CONTENT = "first_subtoken", "first_content"
TAG_ALIGNMENTS = (FIRST_SUBTOKEN, FIRST_CONTENT)
SPACE_PIECE = "\u2581"  # SentencePiece's word-start marker


def _lone_space_id(tokenizer: Any, alignment: str) -> int | None:
    """The id of the lone ``▁`` piece when ``first_content`` alignment must skip it, else None."""
    if alignment not in TAG_ALIGNMENTS:
        raise FeaturizationError(f"tag alignment {alignment!r}; valid: {', '.join(TAG_ALIGNMENTS)}")
    if alignment == FIRST_SUBTOKEN:
        return None
    piece = tokenizer.convert_tokens_to_ids(SPACE_PIECE)
    return None if piece is None or piece == tokenizer.unk_token_id else int(piece)


def _skip_lone_space(word_ids: list[int | None], ids: Sequence[int], space_id: int | None) -> list[int | None]:
    """``word_ids`` with a word-opening lone ``▁`` piece detached from its word (when the word has more pieces)."""
    if space_id is None:
        return word_ids
    out = list(word_ids)
    for pos, w in enumerate(word_ids):
        opens = w is not None and (pos == 0 or word_ids[pos - 1] != w)
        if opens and ids[pos] == space_id and pos + 1 < len(word_ids) and word_ids[pos + 1] == w:
            out[pos] = None
    return out


def _subtoken_counts(enc: Any, words_batch: list[list[str]]) -> list[list[int]]:
    """Number of sub-tokens of each word in the encoding ``enc`` of ``words_batch``."""
    counts = []
    for row, words in enumerate(words_batch):
        per_word = [0] * len(words)
        for w in enc.word_ids(row):
            if w is not None:
                per_word[w] += 1
        counts.append(per_word)
    return counts


def _encode_chunk(chunk: Sequence[TaggingExample], tokenizer: Any) -> tuple[list[list[str]], Any, list[list[int]]]:
    """The chunk's words as the model sees them (a word that yields no sub-token becomes ``unk``), their
    encoding with special tokens, and each word's sub-token count.

    Words are encoded one by one (``is_split_into_words``), so a word's count is the same alone
    and in any window, and a sentence that fits one window keeps this encoding: it is tokenized
    once, which matters most to the server (it featurizes every request)."""
    words = [list(ex.words) for ex in chunk]
    enc = tokenizer(words, is_split_into_words=True, truncation=False)
    counts = _subtoken_counts(enc, words)
    if any(0 in c for c in counts):
        words = [_model_words(ex, c, tokenizer.unk_token) for ex, c in zip(chunk, counts)]
        enc = tokenizer(words, is_split_into_words=True, truncation=False)
        counts = _subtoken_counts(enc, words)
        for ex, c in zip(chunk, counts):
            if 0 in c:
                raise FeaturizationError(f"example {ex.guid}: word {c.index(0)} "
                                         f"({ex.words[c.index(0)]!r}) yields no sub-token")
    return words, enc, counts


def _window_encodings(words: list[list[str]], enc: Any, spans: list[tuple[int, int, int]],
                      tokenizer: Any) -> list[tuple[Any, int]]:
    """(encoding, row) of every window ``(example, first word, end word)``: a window that is its whole
    example reuses the chunk's encoding; the windows of longer sentences are encoded together."""
    out = [(enc, k) for k, _, _ in spans]
    parts = [i for i, (k, a, b) in enumerate(spans) if (a, b) != (0, len(words[k]))]
    if parts:
        enc_parts = tokenizer([words[spans[i][0]][spans[i][1]:spans[i][2]] for i in parts],
                              is_split_into_words=True, truncation=False)
        for row, i in enumerate(parts):
            out[i] = (enc_parts, row)
    return out


def _model_words(ex: TaggingExample, counts: list[int], unk_token: str | None) -> list[str]:
    """The words as fed to the tokenizer: a word that yields no sub-token becomes ``unk``.

    Otherwise such a word (e.g. a lone control character) would have no position
    to carry its label or its prediction.
    """
    if all(counts):
        return list(ex.words)
    if unk_token is None:
        bad = counts.index(0)
        raise FeaturizationError(f"example {ex.guid}: word {bad} ({ex.words[bad]!r}) yields no "
                                 "sub-token and the tokenizer has no unk token to stand in for it")
    return [w if n else unk_token for w, n in zip(ex.words, counts)]


def _windows(ex: TaggingExample, counts: list[int], budget: int, max_length: int
             ) -> list[tuple[int, int]]:
    """Greedy split of the words into ``[start, end)`` runs of at most ``budget`` sub-tokens."""
    windows, start, used = [], 0, 0
    for i, n in enumerate(counts):
        if n > budget:
            raise FeaturizationError(
                f"example {ex.guid}: word {i} ({ex.words[i][:40]!r}) has {n} sub-tokens, more than "
                f"the {budget} that fit in max_length={max_length}")
        if used + n > budget:
            windows.append((start, i))
            start, used = i, 0
        used += n
    windows.append((start, len(counts)))
    return windows


def featurize_tagging(examples: Sequence[TaggingExample], tokenizer: Any, label_list: Sequence[str],
                      *, max_length: int = 128, alignment: str = FIRST_SUBTOKEN) -> list[TaggingFeature]:
    """One feature per window; see the module docstring for the windowing and alignment rules.

    Long because the windowing, the unk stand-ins and the label placement share one pass
    over each tokenized chunk.
    """
    labels = label_index(label_list)
    space_id = _lone_space_id(tokenizer, alignment)
    budget = max_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise FeaturizationError(f"max_length={max_length} leaves no room for words")
    features: list[TaggingFeature] = []
    for start in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[start:start + TOKENIZE_CHUNK]
        for ex in chunk:
            if not ex.words:
                raise FeaturizationError(f"example {ex.guid}: no words")
            if ex.tags is not None and len(ex.tags) != len(ex.words):
                raise FeaturizationError(
                    f"example {ex.guid}: {len(ex.words)} words but {len(ex.tags)} tags")
        words, whole, counts = _encode_chunk(chunk, tokenizer)
        # (example position in chunk, first word, end word) for every window
        spans = [(k, a, b) for k, (ex, c) in enumerate(zip(chunk, counts))
                 for a, b in _windows(ex, c, budget, max_length)]
        for (k, a, b), (enc, row) in zip(spans, _window_encodings(words, whole, spans, tokenizer)):
            ex = chunk[k]
            ids = enc["input_ids"][row]
            if len(ids) > max_length:  # only if the tokenizer splits words differently in context
                raise FeaturizationError(
                    f"example {ex.guid}: window of words {a}..{b - 1} is {len(ids)} tokens, "
                    f"longer than max_length={max_length}")
            word_ids = np.full(len(ids), -1, dtype=np.int32)
            row_labels = np.full(len(ids), IGNORE_INDEX, dtype=np.int32)
            previous = None
            for pos, w in enumerate(_skip_lone_space(enc.word_ids(row), ids, space_id)):
                if w is None:
                    previous = None
                    continue
                word_ids[pos] = a + w
                if w != previous and ex.tags is not None:
                    tag = ex.tags[a + w]
                    if tag not in labels:
                        raise FeaturizationError(f"example {ex.guid}: unknown tag {tag!r} on word "
                                                 f"{a + w}; expected one of {list(label_list)}")
                    row_labels[pos] = labels[tag]
                previous = w
            features.append(TaggingFeature(
                input_ids=to_ids(ids), labels=row_labels, word_ids=word_ids,
                example_index=start + k, word_offset=a, token_type_ids=token_types(enc, row)))
    return features


def first_subtoken_positions(feature: TaggingFeature) -> np.ndarray:
    """Positions that carry a word's label: the first sub-token of each word."""
    w = feature.word_ids
    previous = np.concatenate([[-1], w[:-1]])
    return np.flatnonzero((w >= 0) & (w != previous))


def word_predictions(features: Sequence[TaggingFeature], token_predictions: Sequence[Sequence[int]],
                     examples: Sequence[TaggingExample]) -> list[list[int]]:
    """Map per-token predictions (one row per feature, padding allowed) back to one per word.

    Each word takes the prediction at its first sub-token. Every word of every
    example must be covered exactly once, else this raises (a featurizer bug).
    """
    if len(token_predictions) != len(features):
        raise ValueError(f"{len(token_predictions)} prediction rows for {len(features)} features")
    out: list[list[int | None]] = [[None] * len(ex.words) for ex in examples]
    for feature, preds in zip(features, token_predictions):
        row = out[feature.example_index]
        for pos in first_subtoken_positions(feature):
            w = int(feature.word_ids[pos])
            if row[w] is not None:
                raise FeaturizationError(f"example {examples[feature.example_index].guid}: "
                                         f"word {w} predicted twice")
            row[w] = int(preds[pos])
    for ex, row in zip(examples, out):
        if None in row:
            raise FeaturizationError(f"example {ex.guid}: word {row.index(None)} has no prediction")
    return out  # type: ignore[return-value]  # no None left


def collate(features: Sequence[TaggingFeature], pad_id: int, *,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest row: ``input_ids``, ``attention_mask``, ``labels`` (padded with -100)."""
    batch = collate_inputs(features, pad_id, pad_to_multiple_of)
    length = padded_length([len(f.input_ids) for f in features], pad_to_multiple_of)
    batch["labels"] = pad_rows([f.labels for f in features], IGNORE_INDEX, length)
    return batch


@dataclass
class TaggingFeaturizer:
    """:func:`featurize_tagging` with its settings, for the feature cache."""

    tokenizer: Any
    label_list: Sequence[str]
    max_length: int = field(default=128, metadata={"help": "Longest window in tokens, specials included."})
    alignment: str = field(default=FIRST_SUBTOKEN, metadata={"help": "Which piece of a word carries its label."})
    name: ClassVar[str] = "tagging"

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label_list": list(self.label_list), "max_length": self.max_length}
        if self.alignment != FIRST_SUBTOKEN:  # cache keys of XTREME-aligned features stay as they were
            out["alignment"] = self.alignment
        return out

    def __call__(self, examples: Sequence[TaggingExample]) -> list[TaggingFeature]:
        return featurize_tagging(examples, self.tokenizer, self.label_list, max_length=self.max_length,
                                 alignment=self.alignment)
