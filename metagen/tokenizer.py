"""A `tokenizers` byte-level BPE tokenizer built from a GGUF's tokenizer.ggml.* metadata,
and the chat template stored in the file (Jinja, rendered in a sandbox).

Pre-tokenization follows the model's training: for "smollm" (and the StarCoder family)
every Unicode number character is split on its own before GPT-2's byte-level regex, as
llama.cpp's llama-vocab.cpp and SmolLM2's own tokenizer.json do.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from functools import cached_property
from pathlib import Path

from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as HFTokenizer

from metagen.errors import ModelError, RequestError
from metagen.files import read_regular_text
from metagen.gguf import TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED, TokenizerData
from metagen.template import BoundedSandbox, template_line, template_reason

# llama.cpp pre-tokenizer names whose first step splits numbers into single characters.
MAX_CACHE_BYTES = 64 * 2**20  # a cached tokenizer.json larger than this is damaged
SINGLE_DIGIT_PRE = {"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"}

CHATML_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
    " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

# Tokens that end a turn in common chat formats, besides the file's own EOS.
END_OF_TURN = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>", "<|end|>")


def _pre_tokenizer(pre: str):
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if pre in SINGLE_DIGIT_PRE:
        # \p{N}: every number character (Nd, Nl, No) alone, as llama.cpp's first regex.
        digits = pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated")
        return pre_tokenizers.Sequence([digits, byte_level])
    return byte_level


def build_hf_tokenizer(data: TokenizerData) -> HFTokenizer:
    """A tokenizers.Tokenizer equivalent to the GGUF's vocabulary and merges."""
    vocab = {token: index for index, token in enumerate(data.tokens)}
    merges = []
    for line in data.merges:
        left, sep, right = line.partition(" ")
        if not sep:
            raise ModelError(f"malformed BPE merge {line!r} in the model's tokenizer")
        merges.append((left, right))
    bpe = models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False)
    tokenizer = HFTokenizer(bpe)
    tokenizer.pre_tokenizer = _pre_tokenizer(data.pre)
    tokenizer.decoder = decoders.ByteLevel()
    special = [
        AddedToken(token, special=True, normalized=False)
        for token, kind in zip(data.tokens, data.token_types)
        if kind in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
    ]
    tokenizer.add_special_tokens(special)
    return tokenizer


def tokenizer_meta_path(path: Path) -> Path:
    """Where Tokenizer.save keeps metagen's own fields for the tokenizer saved at `path`."""
    return path.with_name(path.stem + "-meta.json")


class Tokenizer:
    """Encode/decode text and render chat messages for one model."""

    def __init__(self, hf: HFTokenizer, *, chat_template: str | None, bos_id: int | None,
                 eos_id: int | None, pad_id: int | None, add_bos: bool = False):
        self.hf = hf
        self.chat_template = chat_template
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id if pad_id is not None else (eos_id if eos_id is not None else 0)
        self.add_bos = add_bos
        self.origin: str | None = None  # the model file's name, for messages
        self._switch = threading.Lock()  # held while hf reads special tokens as text (encode_plain)
        self.vocab_size = hf.get_vocab_size(with_added_tokens=True)
        ids = {hf.token_to_id(t) for t in END_OF_TURN} | ({eos_id} if eos_id is not None else set())
        self.eos_ids = frozenset(i for i in ids if i is not None)

    @classmethod
    def from_data(cls, data: TokenizerData) -> "Tokenizer":
        return cls(build_hf_tokenizer(data), chat_template=data.chat_template, bos_id=data.bos_id,
                   eos_id=data.eos_id, pad_id=data.pad_id, add_bos=data.add_bos)

    # -- the fast-reload cache: the tokenizers library's own JSON, metagen's fields beside it ----
    # (one JSON file holding both cost a parse and a re-serialisation of 2 MB in every process)
    def save(self, path: Path) -> None:
        """The library's JSON at `path`, chat template and special ids at tokenizer_meta_path(path)."""
        meta = {"chat_template": self.chat_template, "bos_id": self.bos_id, "eos_id": self.eos_id,
                "pad_id": self.pad_id, "add_bos": self.add_bos}
        path.write_text(self.hf.to_str(), encoding="utf-8")
        tokenizer_meta_path(path).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Tokenizer":
        hf = HFTokenizer.from_str(read_regular_text(path, MAX_CACHE_BYTES))
        return cls(hf, **json.loads(read_regular_text(tokenizer_meta_path(path), MAX_CACHE_BYTES)))

    # -- text <-> ids ---------------------------------------------------------------
    def encode(self, text: str, *, add_bos: bool | None = None) -> list[int]:
        """Token ids of text; special tokens written in the text are kept whole."""
        with self._switch:
            ids = self.hf.encode(text, add_special_tokens=False).ids
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids = [self.bos_id] + ids
        return ids

    def encode_plain(self, text: str) -> list[int]:
        """Token ids of text in which nothing is a special token (model output, world text)."""
        # The same tokenizer with its special tokens read as text for this one call: a second
        # tokenizer built for it cost 0.1 s in every process. The lock keeps encode() of
        # another thread from seeing the switch.
        with self._switch:
            self.hf.encode_special_tokens = True
            try:
                return self.hf.encode(text, add_special_tokens=False).ids
            finally:
                self.hf.encode_special_tokens = False

    def decode(self, ids, *, skip_special: bool = True) -> str:
        return self.hf.decode(list(ids), skip_special_tokens=skip_special)

    def count(self, text: str) -> int:
        return len(self.encode(text, add_bos=False))

    @cached_property
    def end_of_turn_id(self) -> int | None:
        """The token the chat template closes an answer with (<|im_end|>), if any."""
        ids = self.encode_chat([{"role": "assistant", "content": "x"}], add_generation_prompt=False)
        return next((i for i in ids[1:] if i in self.eos_ids), self.eos_id)

    @cached_property
    def special_ids(self) -> frozenset[int]:
        return frozenset(t.content and self.hf.token_to_id(t.content)
                         for t in self.hf.get_added_tokens_decoder().values() if t.special)

    @cached_property
    def longest_token_bytes(self) -> int:
        """The most bytes one token stands for (byte-level BPE spells a byte as one character)."""
        return max(map(len, self.vocabulary()), default=1) or 1

    def least_tokens(self, text: str) -> int:
        """A lower bound on count(text), without tokenizing: refuses a huge prompt in no time."""
        return -(-len(text.encode("utf-8", "surrogatepass")) // self.longest_token_bytes)

    def token_text(self, token_id: int) -> str:
        return self.hf.decode([token_id], skip_special_tokens=False)

    def vocabulary(self) -> tuple[str, ...]:
        """Every token's raw vocabulary entry, by id ("Ġthe" in byte-level BPE)."""
        if getattr(self, "_vocabulary", None) is None:
            self._vocabulary = tuple(self.hf.id_to_token(i) or "" for i in range(self.vocab_size))
        return self._vocabulary

    # -- chat -----------------------------------------------------------------------
    @cached_property
    def _template(self):
        """The chat template compiled once in a BoundedSandbox (ChatML if the file has none)."""
        from jinja2 import TemplateError

        env = BoundedSandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])

        def raise_exception(message):
            raise TemplateError(message)

        env.globals["raise_exception"] = raise_exception
        try:
            return env, env.compile_bounded(self.chat_template or CHATML_TEMPLATE)
        except Exception as error:  # noqa: BLE001 - the file's own code: every failure is the file's
            raise self._template_error(error) from None

    def render_chat(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Messages -> prompt text, through the file's chat template (ChatML if none).

        The template is the model file's own code: it runs in a sandbox bounded in time,
        size and depth (metagen.template), and any failure is one ModelError.
        """
        env, template = self._template
        token = lambda i: self.hf.id_to_token(i) if i is not None else ""  # noqa: E731
        try:
            return env.render_bounded(template, messages=messages, add_generation_prompt=add_generation_prompt,
                                      bos_token=token(self.bos_id), eos_token=token(self.eos_id))
        except Exception as error:  # noqa: BLE001 - as above; signals are BaseExceptions
            raise self._template_error(error) from None

    def encode_chat(self, messages: list[dict], add_generation_prompt: bool = True, suffix: str = "") -> list[int]:
        """Token ids of the rendered chat, then suffix; special tokens come only from the template.

        Text in a message or in suffix (world, request, model output) is encoded as plain
        text even where it spells a control token: `<|im_end|>` in a character's
        description is the characters `<`, `|`, ..., never the end of a turn. The template
        is rendered with a placeholder for each message's content to find where the
        contents go; a template that changes the contents (trim, upper) is refused only
        when a content would otherwise add a special token.
        """
        nonce = secrets.token_hex(4)
        marks = [f"\ue000{nonce}{i}\ue001" for i in range(len(messages))]
        marked = self.render_chat([{**m, "content": mark} for m, mark in zip(messages, marks)], add_generation_prompt)
        real = self.render_chat(messages, add_generation_prompt)
        pieces = re.split("(" + "|".join(map(re.escape, marks)) + ")", marked) if marks else [marked]
        contents = dict(zip(marks, (str(m.get("content") or "") for m in messages)))
        runs: list[str | int] = [""]  # plain text runs and special token ids, in order
        for piece in pieces:
            if piece in contents:
                runs[-1] += contents[piece]
                continue
            for part in self._special_split.split(piece) if self._special_split else [piece]:
                if part in self._special_ids_by_text:
                    runs += [self._special_ids_by_text[part], ""]
                else:
                    runs[-1] += part
        if "".join(r if isinstance(r, str) else self.hf.id_to_token(r) for r in runs) != real:
            self._check_no_special_from_text(real, marked)
            runs = [real]  # the template changed the contents: keep its text, checked above
        runs[-1] += suffix
        ids = [bos for bos in [self.bos_id] if self.add_bos and bos is not None]
        for run in runs:
            ids += [run] if isinstance(run, int) else self.encode_plain(run)
        return ids

    def _check_no_special_from_text(self, real: str, marked: str) -> None:
        specials = lambda text: [i for i in self.encode(text, add_bos=False) if i in self.special_ids]  # noqa: E731
        if len(specials(real)) != len(specials(marked)):
            raise RequestError("a message holds text that spells one of the model's control tokens, and this "
                               "model's chat template changes message text, so it cannot be kept as plain text",
                               hint="remove tokens such as <|im_end|> from the world or the request")

    @cached_property
    def _special_ids_by_text(self) -> dict[str, int]:
        return {self.hf.id_to_token(i): i for i in self.special_ids if i is not None}

    @cached_property
    def _special_split(self) -> re.Pattern | None:
        texts = sorted(self._special_ids_by_text, key=len, reverse=True)
        return re.compile("(" + "|".join(map(re.escape, texts)) + ")") if texts else None

    def _template_error(self, error: BaseException) -> ModelError:
        line = template_line(error)
        where = f"{self.origin}: " if self.origin else ""
        at = f":{line}" if line else ""
        return ModelError(f"{where}tokenizer.chat_template{at}: the model's chat template failed: {template_reason(error)}",
                          hint="the model file's template is broken or hostile; use another model")
