"""GGUF file -> ModelArgs, tokenizer metadata and float tensors.

The only module that knows GGUF's on-disk names. The file layout is described in
ggml's docs/gguf.md; tensors are dequantized with the `gguf` library's reference code.
Files converted from Hugging Face checkpoints store the Q and K projection rows permuted
for llama.cpp's interleaved-pair RoPE; we un-permute them here so that model.py can use
the rotate-half RoPE of the original checkpoint (see `unpermute_rows`).
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from metagen.errors import ModelError
from metagen.files import NotRegularFile, broken_link, missing_words, open_regular, os_reason

log = logging.getLogger(__name__)

SUPPORTED_ARCHITECTURES = ("llama",)

# GGUF tensor name -> our name. "{i}" is the block index.
WEIGHT_MAP = {
    "token_embd.weight": "tok_embeddings.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "output.weight",
    "blk.{i}.attn_norm.weight": "layers.{i}.attention_norm.weight",
    "blk.{i}.attn_q.weight": "layers.{i}.attention.wq.weight",
    "blk.{i}.attn_k.weight": "layers.{i}.attention.wk.weight",
    "blk.{i}.attn_v.weight": "layers.{i}.attention.wv.weight",
    "blk.{i}.attn_output.weight": "layers.{i}.attention.wo.weight",
    "blk.{i}.ffn_norm.weight": "layers.{i}.ffn_norm.weight",
    "blk.{i}.ffn_gate.weight": "layers.{i}.feed_forward.w1.weight",
    "blk.{i}.ffn_down.weight": "layers.{i}.feed_forward.w2.weight",
    "blk.{i}.ffn_up.weight": "layers.{i}.feed_forward.w3.weight",
}

# The largest shape metagen accepts from metadata, checked before anything is allocated.
_ARG_LIMITS = {"dim": 65_536, "n_layers": 1_024, "n_heads": 1_024, "n_kv_heads": 1_024, "vocab_size": 4_194_304,
               "ffn_dim": 262_144, "max_seq_len": 1_048_576}
# What a damaged header or tensor table raises while read (never a signal's exception).
_DAMAGED = (ValueError, IndexError, KeyError, TypeError, OverflowError, struct.error, mmap.error, EOFError)
MAX_DIMS = 4  # GGML_MAX_DIMS: a tensor has at most four dimensions
MAX_ARRAY_DEPTH = 4  # arrays of arrays in metadata

# GGUF token types (llama.cpp's llama_token_type).
TOKEN_TYPE_NORMAL = 1
TOKEN_TYPE_UNKNOWN = 2
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4
TOKEN_TYPE_BYTE = 6


@dataclass(frozen=True)
class ModelArgs:
    """The shape of a llama-family model, read from GGUF metadata."""

    dim: int = 576  # embedding width (llama.embedding_length)
    n_layers: int = 30  # transformer blocks (llama.block_count)
    n_heads: int = 9  # query heads (llama.attention.head_count)
    n_kv_heads: int = 3  # key/value heads, grouped-query attention (head_count_kv)
    vocab_size: int = 49152  # rows of the embedding table
    ffn_dim: int = 1536  # SwiGLU hidden width (llama.feed_forward_length)
    rope_theta: float = 10000.0  # rotary base (llama.rope.freq_base)
    norm_eps: float = 1e-5  # RMSNorm epsilon (llama.attention.layer_norm_rms_epsilon)
    max_seq_len: int = 2048  # context length the model was trained for
    tied_embeddings: bool = True  # output head shares the embedding matrix

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def __post_init__(self):
        for name, high in _ARG_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
                raise ModelError(f"model shape: {name} is {value!r}, outside 1 to {high:,}",
                                 hint="the file's metadata is damaged or not a model metagen can run")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value < 1e12):
                raise ModelError(f"model shape: {name} is {value!r}, not a positive finite number",
                                 hint="the file's metadata is damaged")
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads:
            raise ModelError(
                f"inconsistent model shape: dim {self.dim}, {self.n_heads} heads, "
                f"{self.n_kv_heads} KV heads"
            )

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class TokenizerData:
    """The tokenizer.ggml.* metadata a BPE tokenizer is built from."""

    model: str  # "gpt2" for byte-level BPE
    pre: str  # pre-tokenizer name, e.g. "smollm"
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    add_bos: bool
    chat_template: str | None


@dataclass
class GGUFContents:
    """Everything metagen takes from one GGUF file."""

    path: Path
    architecture: str
    name: str
    args: ModelArgs
    tokenizer: TokenizerData
    tensors: dict[str, np.ndarray] = field(repr=False)  # our names -> float32 arrays
    tensor_types: dict[str, str] = field(default_factory=dict)  # GGUF name -> type name


def check_gguf_file(path: Path) -> None:
    """ModelError unless path is a regular file that starts with GGUF's magic, b"GGUF"; reads 4 bytes."""
    try:
        exists, is_dir = path.exists(), path.is_dir()  # raise where a folder on the way may not be searched
        if exists and not is_dir:
            with open_regular(path) as handle:
                magic = handle.read(4)
    except NotRegularFile as error:
        raise ModelError(f"model file {path} {error.strerror}", hint="give the path of a .gguf file") from None
    except OSError as error:
        raise ModelError(f"cannot read model file {path}: {os_reason(error)}",
                         hint="let this user read it and search the folders on its way, or give another "
                              "model file") from None
    if not exists:
        raise ModelError(f"model file {missing_words(path)}", hint="make the link name the real .gguf file"
                         if broken_link(path) else "check the path, or run `metagen models list`")
    if is_dir:
        raise ModelError(f"model path {path} is a directory", hint="give the path of a .gguf file")
    if magic != b"GGUF":
        raise ModelError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF')",
            hint="give a llama-family .gguf file, or run `metagen models pull`",
        )


def _field(reader, key: str, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    return f.contents()


class _Field:
    """A metadata value as read by _MetadataReader; the subset of gguf.ReaderField we use."""

    def __init__(self, value):
        self.value = value
        self.data = value if isinstance(value, list) else [value]

    def contents(self):
        return self.value


class _MetadataReader:
    """GGUF metadata and tensor descriptions, without the tensor data.

    gguf.GGUFReader builds numpy views for every item of every array: 4-6 s for SmolLM2's
    49,152-token vocabulary. Reading the same key/value section with struct takes a fraction
    of a second, which is what `metagen models info` and tokenizer-only reads need.
    Layout: ggml's docs/gguf.md (little-endian, versions 2 and 3).
    """

    _SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    _STRING, _ARRAY = 8, 9

    def __init__(self, path: Path):
        import struct

        from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

        self._struct = struct
        with open_regular(path) as handle:  # mapped: only the header's pages are read
            self._data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self._at = 4  # after the magic
        version, = self._read("I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported (2 or 3)")
        tensor_count, kv_count = self._read("QQ")
        self._fits(kv_count, 8 + 4 + 1, "metadata entries")  # key length, type, a byte of value
        self.fields: dict[str, _Field] = {}
        for _ in range(kv_count):
            key = self._string()
            kind, = self._read("I")
            self.fields[key] = _Field(self._value(kind))
        self.tensors = []
        data_end = 0  # bytes the tensor data needs after its aligned start
        self._fits(tensor_count, 8 + 4 + 4 + 8, "tensors")  # name length, n_dims, type, offset
        for _ in range(tensor_count):
            name = self._string()
            n_dims, = self._read("I")
            if not 1 <= n_dims <= MAX_DIMS:
                raise ValueError(f"tensor {name[:40]!r} claims {n_dims} dimensions (at most {MAX_DIMS})")
            shape = self._read("Q" * n_dims)
            kind, offset = self._read("IQ")
            quant = GGMLQuantizationType(kind)
            block, block_bytes = GGML_QUANT_SIZES[quant]
            data_end = max(data_end, offset + math.prod(shape) // block * block_bytes)
            self.tensors.append(_TensorInfo(name, quant, shape))
        alignment = int(self.fields["general.alignment"].value) if "general.alignment" in self.fields else 32
        data_start = -(-self._at // alignment) * alignment
        size = len(self._data)
        self._data.close()
        if data_start + data_end > size:
            raise ValueError(f"the tensors need {data_start + data_end} bytes, the file has {size}")

    def _fits(self, count: int, each: int, what: str) -> None:
        """ValueError unless count items of at least each bytes fit in what is left of the file."""
        left = len(self._data) - self._at
        if count * each > left:
            raise ValueError(f"the header claims {count:,} {what}, more than the {left:,} bytes left can hold")

    def _read(self, fmt: str) -> tuple:
        size = self._struct.calcsize("<" + fmt)
        if self._at + size > len(self._data):  # struct's own words named its buffer, not the file
            raise ValueError(f"the file ends at byte {len(self._data):,}, inside its header")
        values = self._struct.unpack_from("<" + fmt, self._data, self._at)
        self._at += size
        return values

    def _string(self) -> str:
        length, = self._read("Q")
        if self._at + length > len(self._data):
            raise ValueError("a string runs past the end of the file")
        text = self._data[self._at:self._at + length].decode("utf-8", errors="replace")
        self._at += length
        return text

    def _value(self, kind: int, depth: int = 0):
        if kind == self._STRING:
            return self._string()
        if kind == self._ARRAY:
            if depth >= MAX_ARRAY_DEPTH:
                raise ValueError(f"metadata arrays nested more than {MAX_ARRAY_DEPTH} deep")
            item_kind, count = self._read("IQ")
            if item_kind in self._SCALARS:
                fmt = self._SCALARS[item_kind]
                self._fits(count, self._struct.calcsize(fmt), "array items")
                return list(self._read(fmt * count))
            self._fits(count, 8 if item_kind == self._STRING else 4 + 8, "array items")
            return [self._value(item_kind, depth + 1) for _ in range(count)]
        if kind not in self._SCALARS:
            raise ValueError(f"unknown metadata value type {kind}")
        return self._read(self._SCALARS[kind])[0]


@dataclass(frozen=True)
class _TensorInfo:
    name: str
    tensor_type: object  # gguf.GGMLQuantizationType
    shape: tuple[int, ...]


def damaged(path: Path, error: Exception) -> ModelError:
    """The error for a GGUF file that cannot be read: what the reader found, in its words (not a
    Python class name), and how to get a good copy."""
    found = str(error).strip() or "its contents cannot be read"
    return ModelError(f"{path} is damaged or truncated ({found})",
                      hint="download it again; metagen's own model: delete it and run `metagen models pull`")


def _open_reader(path: Path, metadata_only: bool = False):
    from gguf import GGUFReader

    check_gguf_file(path)
    try:
        # Our reader checks every count and length against the file's size before the gguf
        # library, which trusts them, builds anything from the header.
        header = _MetadataReader(path)
        return header if metadata_only else GGUFReader(path, "r")
    except _DAMAGED as error:  # the gguf library raises ValueError, IndexError, struct.error...
        raise damaged(path, error) from error


def read_args(reader, path: Path) -> tuple[str, ModelArgs]:
    """The architecture name and ModelArgs from a reader's metadata."""
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{path} holds a model of architecture {arch!r}; metagen runs llama-family models only",
            hint="use a llama-architecture GGUF such as SmolLM2",
        )

    def key(name, default=None):
        value = _field(reader, f"{arch}.{name}", default)
        if value is None:
            raise ModelError(f"{path} lacks the metadata key {arch}.{name}", hint="the file may be damaged")
        return value

    tokens = reader.fields.get("tokenizer.ggml.tokens")
    vocab_default = len(tokens.data) if tokens is not None else None
    tensor_names = {t.name for t in reader.tensors}
    n_heads = int(key("attention.head_count"))
    shape = dict(
        dim=int(key("embedding_length")),
        n_layers=int(key("block_count")),
        n_heads=n_heads,
        n_kv_heads=int(key("attention.head_count_kv", n_heads)),
        vocab_size=int(key("vocab_size", vocab_default)),
        ffn_dim=int(key("feed_forward_length")),
        rope_theta=float(key("rope.freq_base", 10000.0)),
        norm_eps=float(key("attention.layer_norm_rms_epsilon", 1e-5)),
        max_seq_len=int(key("context_length", 2048)),
        tied_embeddings="output.weight" not in tensor_names,
    )
    try:
        args = ModelArgs(**shape)
    except ModelError as error:
        raise ModelError(f"{path}: {error.message}", hint=error.hint) from None
    return arch, args


def read_tokenizer_data(reader, path: Path) -> TokenizerData:
    tokens = _field(reader, "tokenizer.ggml.tokens")
    if not tokens:
        raise ModelError(f"{path} has no tokenizer vocabulary (tokenizer.ggml.tokens)")
    model = _field(reader, "tokenizer.ggml.model", "gpt2")
    if model != "gpt2":
        raise ModelError(
            f"{path} uses a {model!r} tokenizer; metagen supports byte-level BPE ('gpt2') tokenizers"
        )
    types = _field(reader, "tokenizer.ggml.token_type") or [TOKEN_TYPE_NORMAL] * len(tokens)

    def optional_id(name):
        value = _field(reader, f"tokenizer.ggml.{name}")
        return None if value is None else int(value)

    return TokenizerData(
        model=model,
        pre=_field(reader, "tokenizer.ggml.pre", "default"),
        tokens=list(tokens),
        token_types=[int(t) for t in types],
        merges=list(_field(reader, "tokenizer.ggml.merges") or []),
        bos_id=optional_id("bos_token_id"),
        eos_id=optional_id("eos_token_id"),
        pad_id=optional_id("padding_token_id"),
        unk_id=optional_id("unknown_token_id"),
        add_bos=bool(_field(reader, "tokenizer.ggml.add_bos_token", False)),
        chat_template=_field(reader, "tokenizer.chat_template"),
    )


def unpermute_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation: (out, in) -> (out, in), rotate-half layout.

    The converter wrote, per head, rows [x0 x1 ... | y0 y1 ...] as pairs (x0 y0 x1 y1 ...);
    this puts each head's halves back together.
    """
    out_features, in_features = weight.shape
    return (
        weight.reshape(n_heads, out_features // n_heads // 2, 2, in_features)
        .swapaxes(1, 2)
        .reshape(out_features, in_features)
    )


def _our_name(gguf_name: str) -> str | None:
    if gguf_name in WEIGHT_MAP:
        return WEIGHT_MAP[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[1].isdigit():
        template = WEIGHT_MAP.get(f"blk.{{i}}.{parts[2]}")
        if template:
            return template.format(i=parts[1])
    return None


def dequantize_tensor(tensor) -> np.ndarray:
    """One GGUF tensor -> float32 array of shape (rows, cols) as stored (row-major, [out, in])."""
    from gguf import GGMLQuantizationType, quants

    kind = tensor.tensor_type
    if kind == GGMLQuantizationType.F32:
        array = np.asarray(tensor.data, dtype=np.float32)
    elif kind == GGMLQuantizationType.F16:
        array = np.asarray(tensor.data, dtype=np.float16).astype(np.float32)
    else:
        array = quants.dequantize(tensor.data, kind).astype(np.float32, copy=False)
    # GGUF lists dimensions fastest-first: shape [in, out] means a row-major (out, in) matrix.
    shape = tuple(int(d) for d in reversed(tensor.shape))
    return array.reshape(shape)


def read_gguf(path: str | os.PathLike, *, load_tensors: bool = True) -> GGUFContents:
    """Read a GGUF file: its shape, tokenizer metadata and (optionally) float32 tensors."""
    path = Path(path)
    reader = _open_reader(path, metadata_only=not load_tensors)
    try:
        arch, args = read_args(reader, path)
        tok = read_tokenizer_data(reader, path)
        name = _field(reader, "general.name", path.stem)
        tensors: dict[str, np.ndarray] = {}
        types: dict[str, str] = {}
        for tensor in reader.tensors:
            types[tensor.name] = tensor.tensor_type.name
            ours = _our_name(tensor.name)
            if ours is None:
                log.info("ignoring tensor %s", tensor.name)
                continue
            if not load_tensors:
                continue
            array = dequantize_tensor(tensor)
            if not np.isfinite(array).all():  # a damaged file: NaN logits at the first token otherwise
                raise ModelError(f"{path}: tensor {tensor.name} holds NaN or infinite values (the file is damaged)",
                                 hint="delete it and run `metagen models pull` again, or give another file")
            if tensor.name.endswith("attn_q.weight"):
                array = unpermute_rows(array, args.n_heads)
            elif tensor.name.endswith("attn_k.weight"):
                array = unpermute_rows(array, args.n_kv_heads)
            tensors[ours] = array
    except _DAMAGED as error:
        raise damaged(path, error) from error
    if load_tensors:
        _check_tensors(tensors, args, path)
    return GGUFContents(path=path, architecture=arch, name=str(name), args=args, tokenizer=tok,
                        tensors=tensors, tensor_types=types)


def expected_shapes(args: ModelArgs) -> dict[str, tuple[int, ...]]:
    """Our tensor names -> the shape each must have."""
    kv_dim = args.n_kv_heads * args.head_dim
    shapes = {
        "tok_embeddings.weight": (args.vocab_size, args.dim),
        "norm.weight": (args.dim,),
    }
    if not args.tied_embeddings:
        shapes["output.weight"] = (args.vocab_size, args.dim)
    for i in range(args.n_layers):
        p = f"layers.{i}."
        shapes.update({
            p + "attention_norm.weight": (args.dim,),
            p + "attention.wq.weight": (args.dim, args.dim),
            p + "attention.wk.weight": (kv_dim, args.dim),
            p + "attention.wv.weight": (kv_dim, args.dim),
            p + "attention.wo.weight": (args.dim, args.dim),
            p + "ffn_norm.weight": (args.dim,),
            p + "feed_forward.w1.weight": (args.ffn_dim, args.dim),
            p + "feed_forward.w2.weight": (args.dim, args.ffn_dim),
            p + "feed_forward.w3.weight": (args.ffn_dim, args.dim),
        })
    return shapes


def _check_tensors(tensors: dict[str, np.ndarray], args: ModelArgs, path: Path) -> None:
    for name, shape in expected_shapes(args).items():
        if name not in tensors:
            raise ModelError(f"{path} lacks the tensor for {name}", hint="the file may be damaged or of another layout")
        if tuple(tensors[name].shape) != shape:
            raise ModelError(
                f"{path}: tensor {name} has shape {tuple(tensors[name].shape)}, expected {shape}",
                hint="the file may be damaged",
            )


def write_gguf(path: str | os.PathLike, args: ModelArgs, tensors: dict[str, np.ndarray],
               tokenizer: TokenizerData, *, name: str = "tiny", arch: str = "llama") -> None:
    """Write a llama-family GGUF (float32 tensors, our names) the way converters do.

    Used by the test suite to build a tiny model that loads through the real code path;
    Q/K rows are permuted as llama.cpp's converter permutes them.
    """
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(name)
    writer.add_block_count(args.n_layers)
    writer.add_context_length(args.max_seq_len)
    writer.add_embedding_length(args.dim)
    writer.add_feed_forward_length(args.ffn_dim)
    writer.add_head_count(args.n_heads)
    writer.add_head_count_kv(args.n_kv_heads)
    writer.add_rope_freq_base(args.rope_theta)
    writer.add_layer_norm_rms_eps(args.norm_eps)
    writer.add_vocab_size(args.vocab_size)
    writer.add_rope_dimension_count(args.head_dim)
    writer.add_tokenizer_model(tokenizer.model)
    writer.add_tokenizer_pre(tokenizer.pre)
    writer.add_token_list(tokenizer.tokens)
    writer.add_token_types(tokenizer.token_types)
    writer.add_token_merges(tokenizer.merges)
    for key, value in (("bos", tokenizer.bos_id), ("eos", tokenizer.eos_id),
                       ("pad", tokenizer.pad_id), ("unk", tokenizer.unk_id)):
        if value is not None:
            getattr(writer, f"add_{key}_token_id")(value)
    writer.add_add_bos_token(tokenizer.add_bos)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)
    reverse = {}
    for gguf_name, ours in WEIGHT_MAP.items():
        if "{i}" in gguf_name:
            for i in range(args.n_layers):
                reverse[ours.format(i=i)] = gguf_name.format(i=i)
        else:
            reverse[ours] = gguf_name
    for ours, array in tensors.items():
        gguf_name = reverse[ours]
        array = np.ascontiguousarray(array, dtype=np.float32)
        if gguf_name.endswith("attn_q.weight"):
            array = permute_rows(array, args.n_heads)
        elif gguf_name.endswith("attn_k.weight"):
            array = permute_rows(array, args.n_kv_heads)
        writer.add_tensor(gguf_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def permute_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp converter's Q/K permutation (the inverse of unpermute_rows)."""
    out_features, in_features = weight.shape
    return (
        weight.reshape(n_heads, 2, out_features // n_heads // 2, in_features)
        .swapaxes(1, 2)
        .reshape(out_features, in_features)
    )
