"""LoRA adapters: a new one changes nothing, a merged one computes what the unmerged one does,
and a file that does not fit the model is refused in one line."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from metagen.errors import ModelError
from metagen.gguf import read_gguf
from metagen.lora import AdapterConfig, adapter_tensors, attach, load_adapter, save_adapter
from metagen.model import Transformer, random_weights
from tests.conftest import tiny_args, write_tiny_gguf

SHA = "ab" * 32


def _model(args, seed=0):
    return Transformer.from_weights(args, random_weights(args, seed=seed), "float32")


def _logits(model, ids):
    return model(ids, model.new_cache(1, ids.shape[1]))


def _trained(args, config, seed=1):
    """A model with an attached adapter whose B is random (as if trained)."""
    model = _model(args)
    lora = attach(model, config, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in lora:
            module.lora_b.copy_(0.05 * torch.randn(module.lora_b.shape, generator=generator))
    return model


def test_a_new_adapter_changes_nothing():
    args = tiny_args(300)
    ids = torch.tensor([[5, 9, 40, 7, 3]])
    plain = _logits(_model(args), ids)
    model = _model(args)
    attach(model, AdapterConfig(rank=4, alpha=8))
    assert torch.equal(_logits(model, ids), plain)


@pytest.mark.parametrize("targets", [("attention.wqkv", "attention.wo"), ("feed_forward.w13", "feed_forward.w2")])
def test_a_merged_adapter_computes_what_the_unmerged_one_does(tmp_path, targets):
    args = tiny_args(300)
    config = AdapterConfig(rank=4, alpha=8, targets=targets)
    model = _trained(args, config)
    ids = torch.tensor([[5, 9, 40, 7, 3, 11]])
    path = tmp_path / "a.safetensors"
    save_adapter(path, adapter_tensors(model), config, SHA)
    adapter = load_adapter(path, args, SHA)
    merged = Transformer.from_weights(args, random_weights(args, seed=0), "float32", adapter.deltas())
    assert torch.allclose(_logits(merged, ids), _logits(model, ids), atol=1e-4)  # float32 rounding
    assert not torch.allclose(_logits(merged, ids), _logits(_model(args), ids), atol=1e-3)


def _saved(tmp_path, args, **config):
    model = _trained(args, AdapterConfig(rank=2, alpha=4, **config))
    path = tmp_path / "a.safetensors"
    save_adapter(path, adapter_tensors(model), AdapterConfig(rank=2, alpha=4, **config), SHA)
    return path


def test_an_adapter_for_another_model_is_refused(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    args = tiny_args(300)
    path = _saved(tmp_path, args)
    with pytest.raises(ModelError, match="made for the model with sha256 abab"):
        load_adapter(path, args, "cd" * 32)
    wider = dataclasses.replace(args, dim=64)
    with pytest.raises(ModelError, match="do not fit this model"):
        load_adapter(path, wider, SHA)
    # a target this model has not: what to do, not the mismatch alone
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    save_file(load_file(str(path)), str(path), metadata={**metadata, "targets": '["attention.wq", "bogus"]'})
    with pytest.raises(ModelError) as error:
        load_adapter(path, args, SHA)
    assert error.value.one_line() == (f"adapter {path}: rank 2 or targets ['attention.wq', 'bogus'] do not fit this "
                                      "model (give --adapter none, or the file `metagen tune --out` wrote for this model)")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "nan", "alpha-nan", "alpha-inf", "alpha-huge", "alpha-0",
                                    "int32"])
def test_a_damaged_adapter_is_one_error(tmp_path, damage):
    args = tiny_args(300)
    path = _saved(tmp_path, args)
    if damage == "garbage":
        path.write_bytes(b"not an adapter at all" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    else:
        from safetensors.torch import load_file, save_file
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata()
        tensors = load_file(str(path))
        if damage == "nan":
            first = sorted(tensors)[0]
            tensors[first][0, 0] = float("nan")
        elif damage == "int32":  # was merged, and the text written
            tensors = {name: (t * 100).to(torch.int32) for name, t in tensors.items()}
        else:  # an alpha that scales every update to NaN, or to nothing
            metadata["alpha"] = {"alpha-nan": "nan", "alpha-inf": "1e309", "alpha-huge": "1e30", "alpha-0": "0"}[damage]
        save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelError) as error:
        load_adapter(path, args, SHA)
    assert "\n" not in str(error.value) and str(path) in str(error.value)
    if damage.startswith("alpha"):
        assert "alpha" in str(error.value) and "at most 10000" in str(error.value)
    if damage == "int32":
        assert error.value.one_line() == (f"adapter {path}: holds int32 tensors, not floating-point numbers "
                                          "(the file is damaged; tune it again)")


@pytest.mark.parametrize("damage, reason", [
    ("garbage", "not a metagen adapter (not a safetensors file, or a damaged one)"),
    ("truncated", "not a metagen adapter (not a safetensors file, or a damaged one)"),
    ("no-metadata", "not a metagen adapter (it records no format, not 'metagen-lora-1')"),
    ("other-format", "not a metagen adapter (its format is 'pt', not 'metagen-lora-1')"),
    ("no-rank", "damaged: its rank, alpha or targets cannot be read"),
    ("bad-targets", "damaged: its rank, alpha or targets cannot be read"),
    ("text-targets", "damaged: its rank, alpha or targets cannot be read"),  # was the targets 'w' and 'q'
    ("twice-targets", "damaged: its rank, alpha or targets cannot be read"),
    ("deep-targets", "damaged: its rank, alpha or targets cannot be read"),  # was a RecursionError traceback
])
def test_a_foreign_or_damaged_adapter_is_named_in_words_not_an_exception_class(tmp_path, damage, reason):
    """The reason was the class of whatever the library raised: (SafetensorError), (KeyError), (JSONDecodeError)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    args = tiny_args(300)
    path = _saved(tmp_path, args)
    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(path))
    if damage == "garbage":
        path.write_bytes(b"not an adapter at all" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "no-metadata":
        save_file(tensors, str(path))
    else:
        changed = {"other-format": {"format": "pt"}, "no-rank": {"rank": None},
                   "bad-targets": {"targets": "[all"}, "text-targets": {"targets": '"wq"'},
                   "twice-targets": {"targets": '["attention.wo", "attention.wo"]'},
                   "deep-targets": {"targets": "[" * 100_000 + "]" * 100_000}}[damage]
        metadata = {k: v for k, v in {**metadata, **changed}.items() if v is not None}
        save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ModelError) as error:
        load_adapter(path, args, SHA)
    assert error.value.one_line() == f"adapter {path}: {reason} (give the file `metagen tune --out` wrote)"


def test_load_model_merges_an_adapter_and_caches_it_apart(tmp_path, isolated_home):
    from metagen.home import file_sha256
    from metagen.generator import load_model

    gguf = write_tiny_gguf(tmp_path / "m.gguf")
    sha = file_sha256(gguf)
    args = read_gguf(gguf).args
    model = _trained(args, AdapterConfig(rank=2, alpha=4))
    adapter = tmp_path / "a.safetensors"
    adapter_sha = save_adapter(adapter, adapter_tensors(model), AdapterConfig(rank=2, alpha=4), sha)
    plain = load_model(str(gguf), dtype="float32")
    tuned = load_model(str(gguf), dtype="float32", adapter=str(adapter))
    assert plain.info.to_dict().get("adapter") is None
    assert tuned.info.to_dict()["adapter"] == {"path": str(adapter), "sha256": adapter_sha}
    ids = torch.tensor([[5, 9, 40]])
    assert not torch.allclose(_logits(plain.model, ids), _logits(tuned.model, ids))
    again = load_model(str(gguf), dtype="float32", adapter=str(adapter))  # from the converted cache
    assert torch.equal(_logits(again.model, ids), _logits(tuned.model, ids))
    folders = sorted(p.name for p in (isolated_home / "converted").iterdir())
    assert any(f"lora{adapter_sha[:12]}" in name for name in folders) and len(folders) == 2
    with pytest.raises(ModelError, match="no such file"):
        load_model(str(gguf), dtype="float32", adapter=str(tmp_path / "missing.safetensors"))


@pytest.mark.parametrize(("target", "said"), [
    ("loop.safetensors", "adapter a.safetensors is a symbolic link in a loop (it leads back to itself)"),
    ("nowhere.safetensors", "adapter a.safetensors is a symbolic link to nowhere.safetensors, which does not exist"),
])
def test_an_adapter_path_through_a_broken_link_says_so(tmp_path, monkeypatch, target, said):
    """--adapter LINK, a link in a loop, said "cannot read adapter a.safetensors: Too many levels of
    symbolic links"; one to nothing, "no such file", though `ls` shows it there."""
    from metagen.lora import existing_adapter

    monkeypatch.chdir(tmp_path)
    os.symlink(target, "a.safetensors")
    os.symlink("a.safetensors", "loop.safetensors")
    with pytest.raises(ModelError) as caught:
        existing_adapter("a.safetensors")
    assert caught.value.one_line() == f"{said} (make the link name the real adapter file)"


def test_the_default_model_ships_an_adapter_that_fits_it(real_model_path):
    from metagen.catalog import DEFAULT_MODEL, KNOWN_MODELS

    known = KNOWN_MODELS[DEFAULT_MODEL]
    adapter = load_adapter(known.adapter_path, read_gguf(real_model_path, load_tensors=False).args, known.sha256)
    assert adapter.config.rank == 64 and adapter.sha256 and len(adapter.deltas()) == 4 * 30


def test_an_adapter_that_is_no_file_or_no_adapter_is_refused_before_any_weight_is_read(tmp_path, isolated_home,
                                                                                         monkeypatch):
    import metagen.generator as generator_module
    from metagen.generator import load_model

    gguf = write_tiny_gguf(tmp_path / "m.gguf")
    with pytest.raises(ModelError, match=r"adapter .* is a folder, not a regular file"):
        load_model(str(gguf), dtype="float32", adapter=str(tmp_path))
    with pytest.raises(ModelError, match=r"adapter /dev/null is a character device"):
        load_model(str(gguf), dtype="float32", adapter="/dev/null")
    real_read, whole_reads, said = generator_module.read_gguf, [], []
    monkeypatch.setattr(generator_module, "read_gguf",
                        lambda path, **kw: whole_reads.append(kw) or real_read(path, **kw))
    garbage = tmp_path / "a.safetensors"
    garbage.write_bytes(b"not an adapter" * 10)
    with pytest.raises(ModelError, match="not a metagen adapter"):
        load_model(str(gguf), dtype="float32", adapter=str(garbage), progress=said.append)
    assert whole_reads == [{"load_tensors": False}] and said == []  # no weights read, no "converting" line
