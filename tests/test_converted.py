"""The converted copy of a model file in the cache (metagen.converted): aligned tensors, one copy per
CPU kernel, one conversion at a time, stale and dead copies removed, another user's copy and the umask."""

from __future__ import annotations

import pytest
import torch


def test_converted_files_keep_every_tensor_on_a_64_byte_boundary(tmp_path):
    import torch
    from safetensors.torch import load_file

    from metagen.converted import save_aligned_safetensors

    state = {"a": torch.arange(5, dtype=torch.int8), "b": torch.randn(3, 7).to(torch.bfloat16),
             "c": torch.randn(11), "d": torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8)}
    path = tmp_path / "w.safetensors"
    save_aligned_safetensors(state, path)
    loaded = {k: v for k, v in load_file(str(path)).items() if not k.startswith("__pad.")}
    assert sorted(loaded) == sorted(state)
    for name, tensor in state.items():
        assert torch.equal(loaded[name], tensor) and loaded[name].data_ptr() % 64 == 0


def test_int4_cache_is_kept_per_cpu_capability(tiny_gguf, isolated_home):
    """int4's packing is the kernel's own: AVX2 must not read what AVX-512 packed (it decodes garbage)."""
    import os
    import subprocess
    import sys

    import torch

    from metagen.generator import load_model

    if torch.backends.cpu.get_cpu_capability() != "AVX512":
        pytest.skip("this CPU has no AVX-512 capability to step down from")
    load_model(str(tiny_gguf), dtype="int4")  # fills the cache, packed for AVX-512
    check = ("import sys, torch; from metagen.generator import build_from_gguf, load_model\n"
             "assert torch.backends.cpu.get_cpu_capability() == 'AVX2'\n"
             "ids = torch.tensor([[5, 9, 40, 7]])\n"
             "def logits(model): return model(ids, cache=model.new_cache(1, 4)).float()\n"
             "cached = load_model(sys.argv[1], dtype='int4').model\n"
             "fresh, _, _ = build_from_gguf(sys.argv[1], 'int4')\n"
             "print(float((logits(cached) - logits(fresh)).abs().max()))\n")
    done = subprocess.run([sys.executable, "-c", check, str(tiny_gguf)], capture_output=True, text=True,
                          env={**os.environ, "ATEN_CPU_CAPABILITY": "avx2"})
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == 0.0
    folders = sorted(p.name for p in (isolated_home / "converted").iterdir())
    assert [name.split("-")[2] for name in folders] == ["avx2", "avx512"]


def test_a_conversion_removes_the_copies_this_version_never_loads(tiny_gguf, isolated_home):
    from metagen.home import file_sha256
    from metagen.converted import CONVERTED_VERSION
    from metagen.generator import load_model

    sha = file_sha256(tiny_gguf)[:16]
    converted = isolated_home / "converted"
    stale = [f"{sha}-float32-v{CONVERTED_VERSION - 1}", f"{sha}-int4-v{CONVERTED_VERSION}",
             f"{sha}-int4-lora0123456789ab-v{CONVERTED_VERSION}"]
    kept = [f"{sha}-bfloat16-v{CONVERTED_VERSION}", f"0123456789abcdef-float32-v{CONVERTED_VERSION - 1}"]
    for name in stale + kept:
        (converted / name).mkdir(parents=True)
    load_model(str(tiny_gguf), dtype="float32")
    assert sorted(p.name for p in converted.iterdir()) == sorted(kept + [f"{sha}-float32-v{CONVERTED_VERSION}"])


def test_loads_started_together_convert_once(tiny_gguf, isolated_home, monkeypatch, caplog):
    """Metagens started together on first use each converted the model, and all but the first then
    failed to move their copy into place, with a WARNING that the cache could not be written (it had
    been). Now the others wait for the first and load its copy."""
    import logging
    import threading

    from metagen import generator as generator_module

    real_build = generator_module.build_from_gguf
    builds, second_built = [], threading.Event()

    def build(*args, **kwargs):
        builds.append(1)
        if len(builds) == 1:
            second_built.wait(timeout=1.0)  # the old code's second load converted in here
        else:
            second_built.set()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(generator_module, "build_from_gguf", build)
    results, said = {}, {"first": [], "second": []}

    def load(which):
        results[which] = generator_module.load_model(str(tiny_gguf), dtype="float32", progress=said[which].append)

    caplog.set_level(logging.WARNING)
    threads = [threading.Thread(target=load, args=(which,)) for which in ("first", "second")]
    threads[0].start()
    while not builds:
        threads[0].join(timeout=0.01)
    threads[1].start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(results) == {"first", "second"}
    assert len(builds) == 1
    assert said["second"] == ["waiting for another metagen to finish converting the model"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    (folder,) = (isolated_home / "converted").iterdir()  # no staging folder left beside it
    assert not folder.name.startswith(".")
    ids = torch.tensor([[5, 9, 40, 7]])
    first, second = (results[w].model(ids, cache=results[w].model.new_cache(1, 4)) for w in ("first", "second"))
    assert torch.equal(first, second)


def test_a_conversion_removes_the_staging_folders_of_killed_ones(tiny_gguf, isolated_home):
    """A conversion killed outright (SIGKILL, the OOM killer) while writing its copy left a staging
    folder of a few hundred MB in converted/ that nothing ever removed. The next conversion of that
    copy removes it (it holds the lock, so none is still being written), and an unnamed one of an
    older metagen once it is an hour old."""
    import os
    import time

    from metagen.home import file_sha256
    from metagen.converted import CONVERTED_VERSION
    from metagen.generator import load_model

    converted = isolated_home / "converted"
    target = f"{file_sha256(tiny_gguf)[:16]}-float32-v{CONVERTED_VERSION}"
    dead = converted / f".staging-{target}-k1ll3d_x"
    old_unnamed, new_unnamed = converted / ".staging-0ld_dead", converted / ".staging-fresh123"
    other = converted / f".staging-0123456789abcdef-float32-v{CONVERTED_VERSION}-running"
    for staging in (dead, old_unnamed, new_unnamed, other):
        staging.mkdir(parents=True)
        (staging / "weights.safetensors").write_bytes(b"half a copy")
    hours_ago = time.time() - 2 * 3600
    os.utime(old_unnamed, (hours_ago, hours_ago))
    load_model(str(tiny_gguf), dtype="float32")
    assert sorted(p.name for p in converted.iterdir()) == sorted([target, new_unnamed.name, other.name])


def test_a_converted_copy_this_user_cannot_read_is_converted_around(runner, world, model_args, isolated_home,
                                                                     monkeypatch):
    """A copy made by another user (a shared cache, one made once with sudo; its folder was 0700
    whatever the umask) stopped every run of this user with a PermissionError traceback. Now it is
    one warning naming the folder and what to do, and the model is converted without it."""
    import errno
    import os

    from conftest import invoke

    story = ["story", world, "-c", "ada", "--seed", 5, "--max-tokens", 6, "--stdout", *model_args]
    baseline = invoke(runner, *story)
    assert baseline.exit_code == 0, baseline.output
    (copy,) = (isolated_home / "converted").iterdir()
    real_stat = os.stat

    def not_ours(path, *args, **kwargs):
        if str(path).startswith(str(copy) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "stat", not_ours)
        result = invoke(runner, *story)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and result.exception is None
    assert result.stdout == baseline.stdout
    assert (f"cannot read the converted copy {copy} (Permission denied); converting the model without it"
            in result.stderr)
    assert (copy / "weights.safetensors").exists()  # another user's copy is never removed


def test_a_cache_behind_a_folder_it_may_not_search_is_converted_around(runner, world, model_args, tmp_path,
                                                                      monkeypatch):
    """METAGEN_HOME in another user's 0700 folder: Path.exists of the converted copy, and then of the
    converted folder, raised PermissionError, a traceback. Now the model is converted without a cache."""
    from conftest import deny_search_of, invoke

    story = ["story", world, "-c", "ada", "--seed", 5, "--max-tokens", 6, "--stdout", *model_args]
    baseline = invoke(runner, *story)
    assert baseline.exit_code == 0, baseline.output
    monkeypatch.setenv("METAGEN_HOME", str(tmp_path / "shut" / "home"))
    deny_search_of(monkeypatch, tmp_path / "shut")
    result = invoke(runner, *story)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert result.stdout == baseline.stdout
    assert "could not cache the converted model" in result.stderr


@pytest.mark.parametrize("umask, mode", [(0o022, 0o755), (0o077, 0o700)])
def test_a_converted_copy_has_the_mode_the_umask_gives(tiny_gguf, isolated_home, umask, mode):
    """The copy's folder was made by mkdtemp, 0700 whatever the umask: in a cache shared between
    users (or made once with sudo) no one else could read it, while the models folder beside it
    was 0755. Now it gets the umask's mode, as the models folder does."""
    import os
    import stat

    from metagen.generator import load_model

    previous = os.umask(umask)
    try:
        load_model(str(tiny_gguf), dtype="float32")
    finally:
        os.umask(previous)
    (copy,) = (isolated_home / "converted").iterdir()
    assert stat.S_IMODE(copy.stat().st_mode) == mode
    assert stat.S_IMODE((copy / "weights.safetensors").stat().st_mode) == mode & 0o666
