"""Tokenising texts into padded model batches of windows (for extraction).

A long text is split into consecutive windows of ``max_length`` tokens, each
with its own special tokens; every window keeps its text index and window
index so that stored token rows can be traced back to their context.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class _Batch:
    index: int
    input_ids: torch.Tensor  # (B, T) int64, right padded
    attention_mask: torch.Tensor  # (B, T) int64
    doc_ids: torch.Tensor  # (B,) int64
    window_ids: torch.Tensor  # (B,) int64


def _windows(tokenizer, texts, max_length, split_long, chunk=256):
    """Yield ``(doc, window, input_ids)`` for every model input, in text order.

    Long texts are cut by the (fast) tokenizer's overflow mechanism into
    windows of `max_length` tokens, each with its own special tokens.
    """
    if split_long and not getattr(tokenizer, "is_fast", False):
        raise ValueError("split_long=True needs a fast (Rust) tokenizer.")
    if max_length <= tokenizer.num_special_tokens_to_add(pair=False):
        raise ValueError(f"max_length={max_length} leaves no room for tokens.")
    for start in range(0, len(texts), chunk):
        part = list(texts[start : start + chunk])
        enc = tokenizer(
            part,
            truncation=True,
            max_length=max_length,
            return_overflowing_tokens=split_long,
        )
        docs = enc["overflow_to_sample_mapping"] if split_long else range(len(part))
        previous, window = -1, 0
        for doc, ids in zip(docs, enc["input_ids"], strict=True):
            window = window + 1 if doc == previous else 0
            previous = doc
            yield start + doc, window, ids


def _collate(group, index, pad_id) -> _Batch:
    length = max(len(ids) for _, _, ids in group)
    input_ids = torch.full((len(group), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, (_, _, ids) in enumerate(group):
        input_ids[row, : len(ids)] = torch.as_tensor(ids)
        mask[row, : len(ids)] = 1
    docs = torch.tensor([g[0] for g in group], dtype=torch.long)
    windows = torch.tensor([g[1] for g in group], dtype=torch.long)
    return _Batch(index, input_ids, mask, docs, windows)


def token_batches(tokenizer, texts, batch_size, max_length, split_long
                  ) -> Iterator[_Batch]:
    """Cut the window stream into right-padded batches of `batch_size` windows.

    The batches depend only on the arguments, which makes resuming exact.
    """
    pad_id = tokenizer.pad_token_id or 0
    group, index = [], 0
    for item in _windows(tokenizer, texts, max_length, split_long):
        group.append(item)
        if len(group) == batch_size:
            yield _collate(group, index, pad_id)
            group, index = [], index + 1
    if group:
        yield _collate(group, index, pad_id)


# ----------------------------------------------------------------------- hooks
