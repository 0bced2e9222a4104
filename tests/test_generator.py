"""Loading models and decoding several rows in every format (the converted copy: tests/test_converted.py)."""

from __future__ import annotations

import pytest
import torch

from metagen.config import GenerationConfig
from metagen.linears import WEIGHT_FORMATS


@pytest.mark.real_model
@pytest.mark.parametrize("weight_format", WEIGHT_FORMATS)
def test_real_model_decodes_four_rows_in_every_format_after_a_cached_load(weight_format, real_model_path):
    """Beam-4 and four sampled rows, with weights as loaded from the converted cache (where an
    unaligned compact weight once crashed the int8 kernel on AVX-512 CPUs)."""
    from metagen.generator import load_model

    load_model(str(real_model_path), dtype=weight_format)  # converts and fills the cache
    generator = load_model(str(real_model_path), dtype=weight_format)  # loads from the cache
    ids = generator.encode_prompt("Write a short story about a lighthouse keeper.")
    beam = GenerationConfig(strategy="beam", num_beams=4, num_return_sequences=4, max_new_tokens=12)
    (result,) = generator.complete([ids], beam)
    assert len(result.tokens) > 0 and len(result.alternatives) == 3
    assert "lighthouse" in (result.text + " ".join(a["text"] for a in result.alternatives)).lower()
    sampled = generator.complete([ids] * 4, GenerationConfig(max_new_tokens=12), seeds=[1, 2, 3, 4])
    assert len(sampled) == 4 and all(len(c.text.split()) >= 3 for c in sampled)


def test_prompts_run_in_bfloat16_only_on_cpus_with_bfloat16_units_and_compact_models(monkeypatch):
    import torch

    from metagen import generator as generator_module
    from metagen.errors import ConfigError
    from metagen.generator import resolve_prompt_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(generator_module, "cpu_has_bfloat16_units", lambda: True)
    assert [resolve_prompt_dtype("auto", f, cpu) for f in WEIGHT_FORMATS] == ["float32", "bfloat16", "bfloat16", "bfloat16"]
    assert resolve_prompt_dtype("auto", "bfloat16", cuda) == "float32"  # a GPU never widens
    monkeypatch.setattr(generator_module, "cpu_has_bfloat16_units", lambda: False)  # AVX2: 5.8x slower there
    assert {resolve_prompt_dtype("auto", f, cpu) for f in WEIGHT_FORMATS} == {"float32"}
    assert resolve_prompt_dtype("bfloat16", "int4", cpu) == "bfloat16"  # asked for (replay): taken
    with pytest.raises(ConfigError, match="--prompt-dtype must be one of auto, float32, bfloat16, got 'half'"):
        resolve_prompt_dtype("half", "int4", cpu)


def test_bfloat16_units_held_back_by_torchs_capability_do_not_count():
    # ATEN_CPU_CAPABILITY=avx2 on a CPU with avx512_bf16: torch 2.13's bfloat16 attention over 64+
    # positions fails there ("pack_vnni2 is only supported when avx512 is supported")
    import os
    import subprocess
    import sys

    from metagen.generator import cpu_has_bfloat16_units

    if not cpu_has_bfloat16_units():
        pytest.skip("this CPU has no bfloat16 units to hold back")
    check = "from metagen.generator import cpu_has_bfloat16_units; print(cpu_has_bfloat16_units())"
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"})
    assert done.returncode == 0 and done.stdout.strip() == "False", done.stderr


@pytest.mark.parametrize("nan", [True, False], ids=["nan", "nothing-left"])
def test_logits_nothing_can_be_chosen_from_are_a_generation_error(tiny_generator, monkeypatch, nan):
    from metagen.errors import GenerationError
    from metagen.sampling import _check_choosable

    bad = torch.tensor([[0.0, float("nan")]]) if nan else torch.full((1, 2), float("-inf"))
    monkeypatch.setattr("metagen.generator.run_search", lambda *a, **k: _check_choosable(bad))
    with pytest.raises(GenerationError) as info:
        tiny_generator.complete([[5, 9]], GenerationConfig(max_new_tokens=2))
    line = info.value.one_line()
    assert line.startswith(tiny_generator.info.path + ": ")
    assert ("pull it again" in line) if nan else ("ban fewer words" in line)


def test_a_loaded_model_records_its_prompt_dtype(tiny_gguf, isolated_home):
    import torch

    from metagen.generator import load_model

    generator = load_model(str(tiny_gguf), dtype="int4", prompt_dtype="bfloat16")
    assert generator.model.prompt_dtype == torch.bfloat16
    assert generator.info.to_dict()["prompt_dtype"] == "bfloat16"
    plain = load_model(str(tiny_gguf), dtype="int4", prompt_dtype="float32")
    assert plain.model.prompt_dtype == torch.float32 and plain.info.to_dict()["prompt_dtype"] == "float32"


def test_models_remove_waits_for_a_load_under_way(tiny_gguf, isolated_home, monkeypatch):
    """`metagen models remove` while another metagen loaded the model deleted the file under it: the
    load failed with "model file ... does not exist" (exit 2). Now remove waits for the load, then
    removes the file and the copy that load converted."""
    import dataclasses
    import hashlib
    import shutil
    import threading

    from metagen import catalog, home
    from metagen import generator as generator_module

    name = catalog.DEFAULT_MODEL
    data = tiny_gguf.read_bytes()
    monkeypatch.setitem(catalog.KNOWN_MODELS, name, dataclasses.replace(
        catalog.KNOWN_MODELS[name], sha256=hashlib.sha256(data).hexdigest(), size=len(data), adapter=""))
    installed = catalog.installed_path(name)
    installed.parent.mkdir(parents=True)
    shutil.copyfile(tiny_gguf, installed)
    real_build = generator_module.build_from_gguf
    building, removed = threading.Event(), threading.Event()

    def build(*args, **kwargs):
        building.set()
        removed.wait(timeout=1.0)  # the old code's remove deleted the file in here
        return real_build(*args, **kwargs)

    monkeypatch.setattr(generator_module, "build_from_gguf", build)
    outcome = {}

    def load():
        try:
            outcome["loaded"] = generator_module.load_model(name, dtype="float32")
        except Exception as error:  # noqa: BLE001 - the test reports it
            outcome["error"] = error

    def remove():
        outcome["removed"] = catalog.remove_model(name)
        removed.set()

    loader = threading.Thread(target=load)
    loader.start()
    assert building.wait(timeout=60)
    remover = threading.Thread(target=remove)
    remover.start()
    for thread in (loader, remover):
        thread.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["loaded"].info.name == name
    (copy,) = home.converted_folders(catalog.KNOWN_MODELS[name].sha256) or [None]  # made, then removed
    assert copy is None
    assert outcome["removed"][0] == installed and len(outcome["removed"]) == 2  # the file and the copy
    assert not installed.exists()
