"""GGUF: a tiny model written with the gguf library loads back; damaged files are refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from metagen.errors import ModelError
from metagen.gguf import ModelArgs, permute_rows, read_gguf, unpermute_rows
from tests.conftest import write_tiny_gguf


def test_round_trip_restores_shape_tokenizer_and_weights(tiny_gguf):
    from metagen.model import random_weights

    contents = read_gguf(tiny_gguf)
    args = contents.args
    assert (args.dim, args.n_layers, args.n_heads, args.n_kv_heads, args.ffn_dim) == (32, 2, 4, 2, 64)
    assert args.max_seq_len == 256 and args.tied_embeddings
    assert contents.tokenizer.pre == "smollm" and contents.tokenizer.eos_id == 2
    assert contents.tokenizer.tokens[:3] == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    expected = random_weights(args, seed=0)
    for name, tensor in expected.items():
        assert np.allclose(contents.tensors[name], tensor.numpy()), name


def test_metadata_reader_agrees_with_the_gguf_library(tiny_gguf):
    """read_gguf(load_tensors=False) parses the header itself (fast); the result must be what
    gguf.GGUFReader gives."""
    quick, whole = read_gguf(tiny_gguf, load_tensors=False), read_gguf(tiny_gguf)
    assert quick.args == whole.args and quick.tokenizer == whole.tokenizer
    assert quick.tensor_types == whole.tensor_types and quick.name == whole.name
    assert quick.tensors == {} and len(whole.tensors) > 0


def test_unpermute_inverts_the_converter_permutation():
    w = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    assert np.array_equal(unpermute_rows(permute_rows(w, 2), 2), w)
    assert not np.array_equal(permute_rows(w, 2), w)


def truncated_header(path, tmp_path):
    out = tmp_path / "short.gguf"
    out.write_bytes(path.read_bytes()[:300])  # inside the metadata
    return out


def truncated(path, tmp_path):
    data = path.read_bytes()
    out = tmp_path / "truncated.gguf"
    out.write_bytes(data[: len(data) * 2 // 3])
    return out


def cut_in_a_number(path, tmp_path):
    out = tmp_path / "cut.gguf"
    out.write_bytes(path.read_bytes()[:6])  # the magic, then half of the version
    return out


def wrong_magic(path, tmp_path):
    out = tmp_path / "magic.gguf"
    out.write_bytes(b"GGML" + path.read_bytes()[4:])
    return out


def not_gguf(path, tmp_path):
    out = tmp_path / "notes.gguf"
    out.write_text("just some text, not a model\n")
    return out


def empty(path, tmp_path):
    out = tmp_path / "empty.gguf"
    out.write_bytes(b"")
    return out


def other_architecture(path, tmp_path):
    from tests.conftest import tiny_args, tiny_tokenizer_data
    from metagen.gguf import write_gguf
    from metagen.model import random_weights

    data = tiny_tokenizer_data()
    args = tiny_args(len(data.tokens))
    out = tmp_path / "gpt2.gguf"
    tensors = {k: v.numpy() for k, v in random_weights(args).items()}
    write_gguf(out, args, tensors, data, arch="gpt2")
    return out


def missing(path, tmp_path):
    return tmp_path / "nowhere.gguf"


@pytest.mark.parametrize("damage, message", [
    (truncated, "damaged or truncated"),
    (truncated_header, "damaged or truncated"),
    # was "(unpack_from requires a buffer of at least 8 bytes for unpacking 4 bytes at offset 4 ...)"
    (cut_in_a_number, "is damaged or truncated (the file ends at byte 6, inside its header)"),
    (wrong_magic, "is not a GGUF file"),
    (not_gguf, "is not a GGUF file"),
    (empty, "is not a GGUF file"),
    (other_architecture, "architecture 'gpt2'"),
    (missing, "does not exist"),
])
@pytest.mark.parametrize("load_tensors", [True, False], ids=["whole", "metadata"])
def test_damaged_files_raise_one_clear_model_error(tiny_gguf, tmp_path, damage, message, load_tensors):
    path = damage(tiny_gguf, tmp_path)
    with pytest.raises(ModelError) as info:
        read_gguf(path, load_tensors=load_tensors)
    assert message in info.value.one_line()
    assert str(path) in info.value.one_line()
    # in words a user reads: no Python class name ("ValueError: ..."), and a way to a good copy
    assert not re.search(r"\b[A-Za-z]*(?:Error|error|Exception)\b: ", info.value.one_line())
    assert info.value.exit_code == 2


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
def test_weights_that_are_not_finite_are_refused_when_read(tmp_path, bad):
    # a damaged file gave NaN logits at its first token, and a traceback (round thirty)
    from metagen.gguf import write_gguf
    from metagen.model import random_weights
    from tests.conftest import tiny_args, tiny_tokenizer_data

    data = tiny_tokenizer_data()
    args = tiny_args(len(data.tokens))
    tensors = {name: t.numpy() for name, t in random_weights(args, seed=0).items()}
    tensors["norm.weight"][3] = bad
    path = tmp_path / "bad.gguf"
    write_gguf(path, args, tensors, data, name="tiny")
    with pytest.raises(ModelError) as info:
        read_gguf(path)
    assert "tensor output_norm.weight holds NaN or infinite values" in info.value.one_line()
    assert str(path) in info.value.one_line() and info.value.exit_code == 2
    assert read_gguf(path, load_tensors=False).args.dim == args.dim  # the metadata alone is not judged


def test_inconsistent_shape_is_refused():
    with pytest.raises(ModelError, match="inconsistent model shape"):
        ModelArgs(dim=30, n_heads=4, n_kv_heads=2)


def test_quantized_tensors_dequantize(tmp_path):
    import gguf

    from metagen.gguf import dequantize_tensor

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((8, 64)).astype(np.float32)
    path = tmp_path / "q.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for qtype in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0, gguf.GGMLQuantizationType.F16):
        data = gguf.quants.quantize(weight, qtype) if qtype != gguf.GGMLQuantizationType.F16 else weight.astype(np.float16)
        writer.add_tensor(f"t.{qtype.name}", data, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = gguf.GGUFReader(str(path))
    for tensor in reader.tensors:
        out = dequantize_tensor(tensor)
        assert out.shape == (8, 64)
        tolerance = {"Q8_0": 0.02, "Q4_0": 0.3, "F16": 1e-3}[tensor.name.split(".")[1]]
        assert np.abs(out - weight).max() < tolerance * np.abs(weight).max()


def test_other_seed_changes_weights(tmp_path):
    a = read_gguf(write_tiny_gguf(tmp_path / "a.gguf", seed=1))
    b = read_gguf(write_tiny_gguf(tmp_path / "b.gguf", seed=2))
    assert not np.allclose(a.tensors["norm.weight"], b.tensors["norm.weight"])


@pytest.mark.parametrize("call", ["stat", "open"])
@pytest.mark.parametrize("command", [["generate", "hi", "--model"], ["models", "info"]])
def test_a_model_file_it_may_not_read_is_one_line(runner, tiny_gguf, monkeypatch, call, command):
    """A --model path in a folder this user may not search (stat: EACCES) was a traceback from
    Path.exists; one it may not open was 'cannot read model file ...' with nothing to do."""
    from tests.conftest import deny_access, invoke

    deny_access(monkeypatch, call, tiny_gguf)
    result = invoke(runner, *command, tiny_gguf)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: cannot read model file {tiny_gguf}: Permission denied (let this user read it "
                             "and search the folders on its way, or give another model file)\n")
