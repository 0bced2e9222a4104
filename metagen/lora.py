"""LoRA adapters: a low-rank change to the model's projections, trained by `metagen tune`.

A LoRA (Hu et al. 2021) leaves a weight W (out, in) frozen and learns two small matrices
A (rank, in) and B (out, rank); the layer computes x @ (W + scale * B @ A).T with
scale = alpha / rank. B starts at zero, so a new adapter changes nothing. Targets are our
fused projections (attention.wqkv, attention.wo, feed_forward.w13, feed_forward.w2), so one
A and B serve Q, K and V together.

For generation the change is merged into the float weights before they take their format
(`merged_weights`), so an adapter costs nothing per token. An adapter file is safetensors:
the tensors `layers.{i}.{target}.lora_a` / `.lora_b` and, in the header's metadata, the rank,
alpha, targets and the sha256 of the model it was trained on; `load_adapter` refuses one
that does not fit the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from metagen.errors import ModelError
from metagen.files import NotRegularFile, broken_link, check_regular, missing_words, part_file
from metagen.gguf import ModelArgs

FORMAT = "metagen-lora-1"
TARGET_GROUPS = {
    "attention": ("attention.wqkv", "attention.wo"),
    "mlp": ("feed_forward.w13", "feed_forward.w2"),
}
TARGET_GROUPS["all"] = TARGET_GROUPS["attention"] + TARGET_GROUPS["mlp"]
MAX_RANK = 256
MAX_ALPHA = 1e4  # alpha / rank scales the update; a larger alpha is a damaged file (1e30 gave NaN logits)
PAD_PREFIX = "__pad."  # filler entries that align tensors in files metagen writes (converted.save_aligned_safetensors)


def target_shapes(args: ModelArgs) -> dict[str, tuple[int, int]]:
    """(out, in) of each fused projection an adapter may change."""
    q, kv = args.n_heads * args.head_dim, args.n_kv_heads * args.head_dim
    return {"attention.wqkv": (q + 2 * kv, args.dim), "attention.wo": (args.dim, q),
            "feed_forward.w13": (2 * args.ffn_dim, args.dim), "feed_forward.w2": (args.dim, args.ffn_dim)}


@dataclass(frozen=True)
class AdapterConfig:
    rank: int = 16
    alpha: float = 32.0
    targets: tuple[str, ...] = TARGET_GROUPS["all"]

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


@dataclass(frozen=True)
class Adapter:
    """A loaded adapter: its settings, tensors by name, the base model's sha256 and its own."""

    config: AdapterConfig
    tensors: dict[str, torch.Tensor]
    base_sha256: str
    sha256: str
    path: str = ""

    def deltas(self) -> dict[str, torch.Tensor]:
        """scale * B @ A (out, in), float32, for every changed projection, by its module name."""
        names = sorted({name.rsplit(".", 1)[0] for name in self.tensors})
        return {name: self.config.scale * (self.tensors[name + ".lora_b"].float() @ self.tensors[name + ".lora_a"].float())
                for name in names}


class LoraLinear(nn.Module):
    """A frozen linear plus a trainable low-rank path: base(x) + scale * (x @ A.T) @ B.T."""

    def __init__(self, base: nn.Module, rank: int, scale: float, generator: torch.Generator):
        super().__init__()
        self.base, self.scale = base, scale
        in_features, out_features = base.in_features, base.out_features
        self.in_features, self.out_features = in_features, out_features
        # A as in nn.Linear's default initialisation; B zero, so the adapter starts as a no-op.
        bound = 1.0 / math.sqrt(in_features)
        self.lora_a = nn.Parameter(torch.empty(rank, in_features).uniform_(-bound, bound, generator=generator))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low_rank = (x.to(self.lora_a.dtype) @ self.lora_a.t()) @ self.lora_b.t()
        return self.base(x) + (self.scale * low_rank).to(x.dtype)


def attach(model: nn.Module, config: AdapterConfig, seed: int = 0) -> list[LoraLinear]:
    """Wrap each target projection of every layer in a LoraLinear (in place); returns them in order."""
    generator = torch.Generator().manual_seed(seed)
    wrapped = []
    for i, layer in enumerate(model.layers):
        for target in config.targets:
            parent_name, attribute = target.split(".")
            parent = getattr(layer, parent_name)
            lora = LoraLinear(getattr(parent, attribute), config.rank, config.scale, generator)
            setattr(parent, attribute, lora)
            wrapped.append(lora)
    return wrapped


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trained A and B of every LoraLinear in `model`, under adapter-file names."""
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLinear):
            found[f"{name}.lora_a"] = module.lora_a.detach().contiguous()
            found[f"{name}.lora_b"] = module.lora_b.detach().contiguous()
    return found


def save_adapter(path: Path, tensors: dict[str, torch.Tensor], config: AdapterConfig, base_sha256: str,
                 dtype: torch.dtype = torch.float32) -> str:
    """Write an adapter file atomically (the same adapter, the same bytes); returns its sha256."""
    from metagen.home import file_sha256
    from metagen.converted import save_aligned_safetensors

    metadata = {"format": FORMAT, "rank": str(config.rank), "alpha": str(config.alpha),
                "targets": json.dumps(list(config.targets)), "base_model_sha256": base_sha256}
    path = Path(path)
    with part_file(path) as part:
        save_aligned_safetensors({name: tensors[name].to(dtype).contiguous() for name in sorted(tensors)}, part, metadata)
    return file_sha256(path)


def existing_adapter(path: str | Path) -> Path:
    """`path` as a Path, or a ModelError when no adapter file is there (a folder or device is none)."""
    path = Path(path)
    hint = "give --adapter none, or the path of a file `metagen tune` wrote"
    try:
        check_regular(path)
    except NotRegularFile as error:
        raise ModelError(f"adapter {path} {error.strerror}", hint=hint) from None
    except OSError as error:
        if broken_link(path):  # not "Too many levels of symbolic links", nor "no such file" for a name that is there
            raise ModelError(f"adapter {missing_words(path)}", hint="make the link name the real adapter file") from None
        if isinstance(error, FileNotFoundError):
            raise ModelError(f"adapter {path}: no such file", hint=hint) from None
        raise ModelError(f"cannot read adapter {path}: {error.strerror}", hint=hint) from None
    return path


def load_adapter(path: str | Path, args: ModelArgs, base_sha256: str) -> Adapter:
    """Read and check an adapter file: its format, the model it was made for and its shapes."""
    from safetensors import safe_open

    from metagen.home import file_sha256

    path = existing_adapter(path)
    where = f"adapter {path}"
    hint = "give the file `metagen tune --out` wrote"
    try:
        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys() if not name.startswith(PAD_PREFIX)}
    except Exception:  # noqa: BLE001 - a damaged or foreign file: whatever the library raises, its name tells no one
        raise ModelError(f"{where}: not a metagen adapter (not a safetensors file, or a damaged one)",
                         hint=hint) from None
    if metadata.get("format") != FORMAT:
        made = f"its format is {metadata['format']!r}" if "format" in metadata else "it records no format"
        raise ModelError(f"{where}: not a metagen adapter ({made}, not {FORMAT!r})", hint=hint)
    try:
        targets = json.loads(metadata["targets"])
        if (not isinstance(targets, list) or not all(isinstance(t, str) for t in targets)
                or len(set(targets)) < len(targets)):
            raise ValueError(targets)  # '"wq"' was read as the targets 'w' and 'q'
        config = AdapterConfig(rank=int(metadata["rank"]), alpha=float(metadata["alpha"]), targets=tuple(targets))
    except (KeyError, TypeError, ValueError, RecursionError):  # RecursionError: targets nested past the parser's depth
        raise ModelError(f"{where}: damaged: its rank, alpha or targets cannot be read", hint=hint) from None
    made_for = metadata.get("base_model_sha256", "")
    if made_for != base_sha256:
        raise ModelError(f"{where}: made for the model with sha256 {made_for[:12]}..., not this one ({base_sha256[:12]}...)",
                         hint="tune an adapter for this model, or give --adapter none")
    _check_shapes(where, tensors, config, args)
    return Adapter(config, tensors, made_for, file_sha256(path), str(path))


def _check_shapes(where: str, tensors: dict[str, torch.Tensor], config: AdapterConfig, args: ModelArgs) -> None:
    shapes = target_shapes(args)
    if not 1 <= config.rank <= MAX_RANK or not set(config.targets) <= set(shapes):
        raise ModelError(f"{where}: rank {config.rank} or targets {list(config.targets)} do not fit this model",
                         hint="give --adapter none, or the file `metagen tune --out` wrote for this model")
    if not 0 < config.alpha <= MAX_ALPHA:  # NaN fails this too
        raise ModelError(f"{where}: its alpha {config.alpha} is not a number above 0 and at most {MAX_ALPHA:g}",
                         hint="the file is damaged; tune it again")
    expected = {}
    for i in range(args.n_layers):
        for target in config.targets:
            out_features, in_features = shapes[target]
            expected[f"layers.{i}.{target}.lora_a"] = (config.rank, in_features)
            expected[f"layers.{i}.{target}.lora_b"] = (out_features, config.rank)
    got = {name: tuple(t.shape) for name, t in tensors.items()}
    if got != expected:
        wrong = sorted(set(got) ^ set(expected)) or [n for n in expected if got[n] != expected[n]]
        raise ModelError(f"{where}: its tensors do not fit this model (first mismatch: {wrong[0]})",
                         hint="the adapter was made for another model; give --adapter none")
    whole = next((t.dtype for t in tensors.values() if not t.is_floating_point()), None)
    if whole is not None:  # merged as they were, int32 A and B changed the weights by whole numbers
        raise ModelError(f"{where}: holds {str(whole).removeprefix('torch.')} tensors, not floating-point numbers",
                         hint="the file is damaged; tune it again")
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise ModelError(f"{where}: holds values that are not finite numbers", hint="tune it again")


__all__ = ["Adapter", "AdapterConfig", "LoraLinear", "MAX_ALPHA", "TARGET_GROUPS", "adapter_tensors", "attach", "existing_adapter", "load_adapter",
           "save_adapter", "target_shapes"]
