"""What every logits processor shares: the protocols a processor and its tokenizer follow,
the -inf that bans a token, and a padded copy of logits for scatters that skip padding.

A processor is any callable `(tokens (B, T) long, logits (B, V) float) -> logits (B, V)`;
in `tokens`, -1 means "no token" (left padding, a penalty's exempt tokens) and is ignored. What `tokens`
holds follows the processor's `sees` (metagen.sampling.apply_processors): the history the
penalties count (the default), the prompt and the text ("whole"), or the text alone ("generated").
"""

from __future__ import annotations

from typing import Protocol

import torch

NEG_INF = float("-inf")


class Tokenizer(Protocol):
    """What sampling needs from a tokenizer."""

    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def vocabulary(self) -> tuple[str, ...]: ...


class LogitsProcessor(Protocol):
    def __call__(self, tokens: torch.Tensor, logits: torch.Tensor) -> torch.Tensor: ...


def with_spare_column(logits: torch.Tensor) -> torch.Tensor:
    """A copy of logits with one spare column at index V where padding entries scatter."""
    return torch.cat([logits, logits.new_zeros(logits.shape[0], 1)], dim=1)  # (B, V+1)
