"""Key/value caches: what a decoding step reads of the positions before it.

`KVCache` preallocates every layer's keys and values for a batch of rows; `SharedPrefixCache`
holds the keys and values of one prompt once for several rows that continue it (the candidates
of one unit); `JointPrefixCache` runs several such groups, each after its own prompt, in one pass
(the candidates and their fact-free twins of context contrast); `NoCache` keeps nothing (training).
"""

from __future__ import annotations

import torch

from metagen.gguf import ModelArgs


class KVCache:
    """Preallocated keys and values for every layer: (L, B, n_kv_heads, S, head_dim)."""

    def __init__(self, args: ModelArgs, batch_size: int, max_len: int, dtype: torch.dtype,
                 device: torch.device | str = "cpu"):
        shape = (args.n_layers, batch_size, args.n_kv_heads, max_len, args.head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.max_len = max_len
        self.length = 0  # slots filled so far (the same for every row)

    @classmethod
    def like(cls, other: "KVCache", rows: int, max_len: int) -> "KVCache":
        """An empty cache of `rows` rows and `max_len` slots, of other's layers, heads, dtype and device."""
        cache = cls.__new__(cls)
        L, _, n_kv, _, head_dim = other.k.shape
        shape = (L, rows, n_kv, max_len, head_dim)
        cache.k = torch.zeros(shape, dtype=other.k.dtype, device=other.k.device)
        cache.v = torch.zeros(shape, dtype=other.v.dtype, device=other.v.device)
        cache.max_len, cache.length = max_len, 0
        return cache

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]

    def copy_prefix(self, source: "KVCache", length: int) -> None:
        """Take the first `length` slots from source (the same rows), and mark them filled."""
        self.k[:, :, :, :length] = source.k[:, :, :, :length]
        self.v[:, :, :, :length] = source.v[:, :, :, :length]
        self.length = length

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one layer's new keys and values (B, n_kv_heads, T, head_dim) after the filled
        slots; returns that layer's keys and values up to them (B, n_kv_heads, S, head_dim).
        The model marks the slots filled once every layer has run."""
        end = self.length + k.shape[2]
        self.k[layer, :, :, self.length:end] = k
        self.v[layer, :, :, self.length:end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices, in order): rows that finished stop costing a step."""
        self.k, self.v = self.k[:, rows], self.v[:, rows]

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep rows[i] as row i (beam search), for the filled slots only."""
        n = self.length
        self.k[:, :, :, :n] = self.k[:, rows, :, :n]
        self.v[:, :, :, :n] = self.v[:, rows, :, :n]


class NoCache:
    """Keeps nothing: a pass sees only its own tokens. For training, where autograd cannot
    follow every layer's writes into one shared cache tensor."""

    max_len = 1 << 62

    @property
    def length(self) -> int:
        return 0

    @length.setter
    def length(self, value: int) -> None:
        pass

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return k, v


class SharedPrefixCache:
    """Rows that continue one prompt (the candidates of one unit): the prompt's keys and values
    are held once, and each row keeps only the slots it writes itself.

    A decoding step then reads the prompt's keys once instead of once a row, and widens them to
    float32 once instead of every step. 4 rows, the default int4 model, 2 AVX-512 cores: a step
    after a 300-token prompt 13.4 -> 12.9 ms, 700 tokens 17.8 -> 15.0 ms, 1,300 tokens 22.4 ->
    18.4 ms (medians of 5 alternating runs of 24 steps); and the rows no longer hold 4 copies.
    """

    def __init__(self, prefix: KVCache, rows: int, new_slots: int):
        self.prefix = prefix  # one row whose filled slots hold the prompt
        filled = prefix.length
        # Read every step, so widened to float32 once here (CPU attention is float32; see
        # Attention.forward): (L, n_kv_heads, P, head_dim)
        self.prefix_k = prefix.k[:, 0, :, :filled].float()
        self.prefix_v = prefix.v[:, 0, :, :filled].float()
        self.own = KVCache.like(prefix, rows, new_slots)  # each row's slots after the prompt
        self.max_len = filled + new_slots

    @property
    def batch_size(self) -> int:
        return self.own.batch_size

    @property
    def length(self) -> int:
        return self.prefix.length + self.own.length

    @length.setter
    def length(self, value: int) -> None:
        self.own.length = value - self.prefix.length

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write one layer's new keys and values (B, n_kv_heads, T, head_dim) after the rows' own
        filled slots; returns the rows' own keys and values so far (B, n_kv_heads, t, head_dim)."""
        return self.own.update(layer, k, v)

    def keep_rows(self, rows: torch.Tensor) -> None:
        """Keep only `rows` (indices, in order); the prompt stays shared."""
        self.own.keep_rows(rows)


class JointPrefixCache:
    """Groups of rows that each continue their own shared prompt, run as one batch: the rows of
    group 0, then group 1's, and so on. Every row writes one slot a step after its group's prompt.

    Context contrast decodes a unit's candidates twice, after the world's prompt and after a
    fact-free one (metagen.search.ContextContrast); as two model calls a step, 4 rows each after a
    600-token prompt took 61-66 ms a step, as one call of 8 rows 43-47 ms (the default int4 model,
    2 AVX-512 cores). Positions differ between the groups (each prompt has its own length): a
    row's position is its group's prompt length plus the slots written since.
    """

    def __init__(self, groups: list[SharedPrefixCache]):
        if len({g.own.length for g in groups}) != 1:
            raise ValueError("the groups must have written the same number of slots")
        self.groups = groups
        self.max_len = min(g.own.max_len for g in groups)  # own slots, as `length` counts them
        bounds = [0]
        for g in groups:
            bounds.append(bounds[-1] + g.batch_size)
        self.rows = [slice(a, b) for a, b in zip(bounds, bounds[1:])]  # each group's rows of the batch
        self.longest_prompt = max(g.prefix.length for g in groups)
        device = groups[0].prefix_k.device
        # (B,): each row's group's prompt length, the position of its first own slot
        self.prompt_lengths = torch.tensor([g.prefix.length for g in groups for _ in range(g.batch_size)],
                                           device=device)

    @property
    def batch_size(self) -> int:
        return self.rows[-1].stop

    @property
    def length(self) -> int:
        """Slots written after the prompts (the same in every group)."""
        return self.groups[0].own.length

    @length.setter
    def length(self, value: int) -> None:
        for g in self.groups:
            g.own.length = value
