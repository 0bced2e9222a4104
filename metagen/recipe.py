"""A piece's record read back: what `metagen replay` needs to make the piece again.

A piece file's front matter records its request, settings, seed, model and world files (and, for a
scene decoded beside others, that batch); recipe_from_record checks each of them as the file
holds it, so a damaged or hand-edited record is named by its field, never blamed on a flag the
user did not give.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from metagen import __version__
from metagen.config import GenerationConfig
from metagen.errors import ConfigError, RequestError
from metagen.request import Request, request_from_dict
from metagen.text import kind_of


@dataclass(frozen=True)
class Recipe:
    """What a piece file says about how it was made: enough to make it again."""

    request: Request
    order: str  # dialogue speaker order ("likelihood" for other kinds)
    cfg: GenerationConfig  # with the recorded seed
    seed: int
    model: dict  # name, path, sha256, dtype, device
    world_files: tuple[str, ...]
    world_hash: str
    # a scene decoded beside others: the batch's requests and seeds, and which of them this piece is
    batch: tuple[tuple[Request, int], ...] = ()
    row: int = 0
    # a scene's candidates passed over for saying again a scene kept before it (critic.repeats)
    passed_over: tuple[int, ...] = ()


def recipe_from_record(data: Mapping[str, Any], source: str = "the file") -> Recipe:
    """Read a piece's front matter (read_piece_file's dict) back into a Recipe; ConfigError if incomplete."""
    missing = [k for k in ("request", "settings", "seed", "model", "world_files") if data.get(k) is None]
    if missing:
        raise ConfigError(f"{source} does not record {', '.join(missing)}, so it cannot be replayed")
    request_data = dict(data["request"])
    order = request_data.pop("order", "likelihood")
    seed = data["seed"]
    hint = _record_hint(data.get("metagen_version"))
    try:  # a damaged or edited record names the file, not a flag the user never gave
        request = request_from_dict(request_data)
        cfg = GenerationConfig.from_dict({**data["settings"], "seed": seed})
        batch, row = _decoded_with(data.get("decoded_with") or [], request, seed)
        passed_over = _passed_over(data.get("critic"))
        _check_model_record(data["model"])
    except (ConfigError, RequestError) as error:
        raise ConfigError(f"{source} records what cannot be replayed: {error.one_line()}", hint=hint) from None
    files = tuple(str(f) for f in data["world_files"] or ())
    if not files:
        raise ConfigError(f"{source} records no world file, so it cannot be replayed")
    return Recipe(request=request, order=order, cfg=cfg, seed=seed, model=dict(data["model"]),
                  world_files=files, world_hash=str(data.get("world_hash", "")), batch=batch, row=row,
                  passed_over=passed_over)


def _version_key(version: Any) -> tuple[int, ...] | None:
    """A version's leading numbers, "0.19.0" -> (0, 19, 0); None when it starts with none."""
    match = re.match(r"\d+(?:\.\d+)*", version) if isinstance(version, str) else None
    return tuple(int(n) for n in match.group().split(".")) if match else None


def _record_hint(version: Any) -> str:
    """What to do about a record this metagen cannot replay: one made by a newer metagen, which may
    record settings and fields this one does not know, is for that version; others were edited."""
    made, this = _version_key(version), _version_key(__version__)
    if made is not None and this is not None and made > this:
        return f"it was made by metagen {version}, newer than this one ({__version__}): replay it with metagen {version}"
    return "metagen reads back the files it wrote; restore or regenerate this one"


def _check_model_record(model: Mapping[str, Any]) -> None:
    """ConfigError naming a recorded model field that is not text (path: 5 was a TypeError in replay)."""
    adapter = model.get("adapter")
    if adapter is not None and not isinstance(adapter, Mapping):
        raise ConfigError(f"model.adapter must be a mapping of path and sha256, got {kind_of(adapter)}")
    fields = [(f"model.{k}", model.get(k)) for k in ("name", "path", "sha256", "dtype", "device", "prompt_dtype")]
    fields += [(f"model.adapter.{k}", (adapter or {}).get(k)) for k in ("path", "sha256")]
    for key, value in fields:
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{key} must be text, got {kind_of(value)}")
    from metagen.generator import DEVICES, DTYPES, PROMPT_DTYPES

    for key, allowed in (("dtype", DTYPES), ("prompt_dtype", PROMPT_DTYPES)):  # not blamed on --dtype, never given
        if model.get(key) and model[key] not in allowed:
            raise ConfigError(f"model.{key} must be one of {', '.join(allowed)}, got {model[key]!r}")
    device = model.get("device")  # recorded as torch names it: cpu, or cuda:0 (replayed on cuda)
    if device and device not in DEVICES and not re.fullmatch(r"cuda:\d+", device):  # nor on --device
        raise ConfigError(f"model.device must be one of {', '.join(DEVICES)} (or cuda:N), got {device!r}")


def _decoded_with(entries, request: Request, seed: int) -> tuple[tuple[tuple[Request, int], ...], int]:
    """A record's decoded_with as (request, seed) pairs and the index of the piece's own; ((), 0) for none."""
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) and isinstance(e.get("request"), Mapping)
                                                and isinstance(e.get("seed"), int) for e in entries):
        raise ConfigError("decoded_with must list {request, seed} mappings")
    batch = tuple((request_from_dict(dict(e["request"])), e["seed"]) for e in entries)
    if not batch:
        return (), 0
    own = [k for k, (other, other_seed) in enumerate(batch) if other == request and other_seed == seed]
    if not own:
        raise ConfigError("decoded_with does not hold the piece's own request and seed")
    return batch, own[0]


def _passed_over(critic: Any) -> tuple[int, ...]:
    """A record's critic.repeats: the candidates its choice passed over (pipeline.compose); () for none."""
    repeats = critic.get("repeats", []) if isinstance(critic, Mapping) else []
    if not isinstance(repeats, list) or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0
                                                for k in repeats):
        raise ConfigError(f"critic.repeats must list candidate numbers, got {kind_of(repeats)}")
    return tuple(repeats)


def first_difference(a: str, b: str) -> int | None:
    """The index of the first character where a and b differ; None if they are equal."""
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


__all__ = ["Recipe", "first_difference", "recipe_from_record"]
