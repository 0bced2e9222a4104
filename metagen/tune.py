"""`metagen tune`: train a LoRA adapter (metagen.lora) on examples of metagen's own units.

Data is JSON lines: metagen.corpus.Example dicts (chat messages, metagen's own words after
them, the completion), or plain {"prompt": ..., "completion": ...} pairs (the prompt is one
user message). The model learns the completion's tokens only, plus the end of its turn.

Examples whose tokens are the start of another's (the beats of one story, the lines of one
dialogue: each prompt holds the earlier completions) are packed into one sequence, so the
shared prompt is run once. Each step adds the gradients of `batch` sequences, one at a time
(no padding), and AdamW updates only the adapter. The order of sequences follows the seed and
the epoch; a checkpoint after every epoch and every CHECKPOINT_STEPS steps lets `--resume`
go on exactly where a stopped run was.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from metagen.config import MAX_SEED
from metagen.corpus import Example
from metagen.errors import ConfigError
from metagen.files import parse_json, part_file, read_input, text_lines
from metagen.lora import MAX_ALPHA, TARGET_GROUPS, Adapter, AdapterConfig, LoraLinear, adapter_tensors, attach, save_adapter
from metagen.text import kind_named, kind_of

CHECKPOINT_STEPS = 50
MAX_DATA_BYTES = 256 * 1024 * 1024
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class TuneSettings:
    rank: int = 16  # the adapter's rank
    alpha: float = 32.0  # its scale is alpha / rank
    targets: str = "all"  # which projections: all | attention | mlp
    epochs: int = 2  # passes over the training data
    learning_rate: float = 2e-4  # AdamW's, after a linear warm-up, down to a tenth by a cosine
    warmup_steps: int = 10
    batch: int = 4  # sequences whose gradients make one step
    max_tokens: int = 2048  # a longer sequence is left out (reported)
    seed: int = 0  # the adapter's start and the order of the data
    dtype: str = "float32"  # float32, or bfloat16 (autocast: fast on CPUs with bfloat16 units)

    def __post_init__(self):
        checks = [(self.rank, 1, 256, "--rank"), (self.epochs, 1, 100, "--epochs"), (self.batch, 1, 256, "--batch"),
                  (self.max_tokens, 16, 1 << 20, "--max-tokens"), (self.warmup_steps, 0, 100_000, "--warmup-steps")]
        for value, low, high, flag in checks:
            if not low <= value <= high:
                raise ConfigError(f"{flag} must be {low} to {high}, got {value}")
        if not (0 < self.learning_rate <= 1) or not math.isfinite(self.learning_rate):
            raise ConfigError(f"--learning-rate must be above 0 and at most 1, got {self.learning_rate}")
        if not (0 < self.alpha <= MAX_ALPHA):
            raise ConfigError(f"--alpha must be above 0 and at most {MAX_ALPHA:g}, got {self.alpha}")
        if not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"--seed must be in [0, 2**63), got {self.seed}")
        if self.targets not in TARGET_GROUPS:
            raise ConfigError(f"--targets must be one of {', '.join(TARGET_GROUPS)}, got {self.targets!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")

    @property
    def adapter(self) -> AdapterConfig:
        return AdapterConfig(rank=self.rank, alpha=self.alpha, targets=TARGET_GROUPS[self.targets])

    def starting_from(self, start: Adapter) -> "TuneSettings":
        """These settings with the rank, alpha and targets of the adapter training goes on from."""
        group = next((name for name, targets in TARGET_GROUPS.items() if targets == start.config.targets), None)
        if group is None:
            raise ConfigError(f"adapter {start.path}: its targets {list(start.config.targets)} are none of "
                              f"{', '.join(TARGET_GROUPS)}", hint="start from an adapter `metagen tune` wrote")
        return replace(self, rank=start.config.rank, alpha=start.config.alpha, targets=group)


@dataclass(frozen=True)
class Sequence:
    """Token ids, and the positions whose token is learned (each predicted from the one before)."""

    ids: tuple[int, ...]
    learned: tuple[int, ...]


@dataclass
class TuneReport:
    examples: int
    sequences: int
    tokens: int  # every token run per epoch
    learned_tokens: int
    left_out: int
    steps: int = 0
    seconds: float = 0.0
    epochs: list[dict] = field(default_factory=list)  # per epoch: train and held-aside loss
    eval_loss_before: float | None = None
    adapter_sha256: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- data


CHAT_ROLES = ("system", "user", "assistant")  # what metagen's prompts hold


# The fields of a line of examples: metagen.corpus's Example (and its free-form "meta"), or a plain pair;
# those of a simple type with it (messages and completion are checked on their own).
EXAMPLE_TYPES = {"kind": str, "world": str, "prompt": str, "prefix": str, "unit": str, "focus": str, "end_of_turn": bool}
EXAMPLE_FIELDS = frozenset({*EXAMPLE_TYPES, "messages", "completion", "meta"})


def read_examples(path: str | Path) -> list[Example]:
    """Examples from a JSON-lines file; a bad line is a ConfigError naming file:line."""
    data = read_input(path, MAX_DATA_BYTES, "an examples file", ConfigError)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte 0x{data[error.start]:02x})",
                          hint="save the examples as UTF-8") from None
    examples = []
    for number, line in enumerate(text_lines(text), 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        if "\x00" in line:  # json said only "Expecting value"
            raise ConfigError(f"{where}: holds a NUL byte: not JSON text (binary data, or UTF-16 text?)",
                              hint="save the examples as UTF-8 JSON lines")
        try:
            data = parse_json(line)
        except ValueError as error:
            raise ConfigError(f"{where}: not JSON ({error})", hint="one JSON object a line") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: an example must be a JSON object, got {kind_of(data)}")
        unknown = sorted(set(data) - EXAMPLE_FIELDS)
        if unknown:  # a misspelt "end_of_turn" was dropped without a word
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}",
                              hint=f"the fields are {', '.join(sorted(EXAMPLE_FIELDS))}")
        if not isinstance(data.get("completion"), str) or not data["completion"].strip():
            raise ConfigError(f"{where}: an example needs a non-empty \"completion\" string")
        for name, kind in EXAMPLE_TYPES.items():
            if name in data and not isinstance(data[name], kind):  # "end_of_turn": "no" counted as true
                raise ConfigError(f"{where}: \"{name}\" must be {kind_named(kind)}, got {kind_of(data[name])}")
        if "messages" in data and "prompt" in data:  # the chat was learnt, the prompt dropped without a word
            raise ConfigError(f"{where}: an example gives both \"messages\" and \"prompt\"",
                              hint="give the chat as messages, or the prompt alone as text")
        if "messages" in data:
            messages = data["messages"]
            if (not isinstance(messages, list) or not messages or not all(
                    isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                    for m in messages)):
                raise ConfigError(f"{where}: \"messages\" must be a list of {{\"role\", \"content\"}} strings")
            extra = next((key for m in messages for key in sorted(m) if key not in ("role", "content")), None)
            if extra is not None:  # dropped without a word, as a misspelt field of the example was
                raise ConfigError(f"{where}: a message holds the unknown field {extra!r}; a message is "
                                  "{\"role\", \"content\"}")
            unknown = next((m["role"] for m in messages if m["role"] not in CHAT_ROLES), None)
            if unknown is not None:  # the chat template would render it as a turn the model never saw
                raise ConfigError(f"{where}: unknown role {unknown!r}; roles are {', '.join(CHAT_ROLES)}")
            examples.append(Example.from_dict({"kind": "", "world": "", **data}))
        elif isinstance(data.get("prompt"), str):
            if not data["prompt"].strip():  # an empty user turn: no prompt metagen ever builds
                raise ConfigError(f"{where}: an example's \"prompt\" is empty", hint="give the prompt text the "
                                  "completion answers")
            examples.append(Example("", "", ({"role": "user", "content": data["prompt"]},), data["completion"],
                                    prefix=data.get("prefix", ""), end_of_turn=data.get("end_of_turn", True)))
        else:
            raise ConfigError(f"{where}: an example needs \"messages\" (a chat) or \"prompt\" (text)")
    if not examples:
        raise ConfigError(f"{path}: holds no examples")
    return examples


def example_tokens(tokenizer, example: Example) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids): exactly the prompt metagen decodes after, then what to learn."""
    prompt = tokenizer.encode_chat(list(example.messages), suffix=example.prefix)
    completion = tokenizer.encode_plain(example.completion)
    end = tokenizer.end_of_turn_id if example.end_of_turn else None
    return prompt, completion + ([end] if end is not None else [])


def pack(tokenizer, examples: list[Example], max_tokens: int) -> tuple[list[Sequence], int]:
    """Sequences to train on, each example's completion in exactly one; and how many examples
    were left out for being longer than max_tokens."""
    groups: dict[str, list[tuple[list[int], int]]] = {}
    left_out = 0
    for example in examples:
        prompt, completion = example_tokens(tokenizer, example)
        if len(prompt) + len(completion) > max_tokens:
            left_out += 1
            continue
        key = json.dumps(list(example.messages[:2]), sort_keys=True)
        groups.setdefault(key, []).append((prompt + completion, len(prompt)))
    sequences = []
    for members in groups.values():
        built: list[tuple[list[int], set[int]]] = []
        for full, start in sorted(members, key=lambda m: -len(m[0])):
            home = next((b for b in built if b[0][:len(full)] == full), None)
            if home is None:
                home = (full, set())
                built.append(home)
            home[1].update(range(start, len(full)))
        sequences += [Sequence(tuple(ids), tuple(sorted(learned))) for ids, learned in built]
    return sequences, left_out


def data_sha256(sequences: list[Sequence]) -> str:
    digest = hashlib.sha256()
    for s in sequences:
        digest.update(json.dumps([s.ids, s.learned]).encode())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- training


def sequence_loss(model, sequence: Sequence, device: torch.device) -> tuple[torch.Tensor, int]:
    """The summed cross-entropy of a sequence's learned tokens, and their count."""
    ids = torch.tensor([sequence.ids], device=device)  # (1, T)
    learned = torch.tensor(sequence.learned, device=device)  # (N,)
    states = model.training_states(ids[:, :-1])[0]  # (T-1, dim): position t predicts token t+1
    logits = model.output(states[learned - 1]).float()  # (N, V): only where a token is learned
    return F.cross_entropy(logits, ids[0, learned], reduction="sum"), len(sequence.learned)


def mean_loss(model, sequences: list[Sequence], settings: TuneSettings, device: torch.device) -> float | None:
    """Cross-entropy per learned token over `sequences` (the held-aside split), no gradients."""
    if not sequences:
        return None
    total, count = 0.0, 0
    with torch.no_grad(), _autocast(settings, device):
        for sequence in sequences:
            loss, n = sequence_loss(model, sequence, device)
            total, count = total + loss.item(), count + n
    return total / count


def _autocast(settings: TuneSettings, device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.dtype == "bfloat16")


def _learning_rate(settings: TuneSettings, step: int, total: int) -> float:
    if step < settings.warmup_steps:
        return settings.learning_rate * (step + 1) / settings.warmup_steps
    done = (step - settings.warmup_steps) / max(1, total - settings.warmup_steps)
    return settings.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, done))))


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


ProgressCallback = Callable[[int, int, float], None]  # (step, total steps, last step's loss)


def tune(model, tokenizer, train: list[Example], held: list[Example], settings: TuneSettings, out: Path, *,
         base_sha256: str, checkpoint: Path | None = None, resume: bool = False, start: Adapter | None = None,
         on_step: ProgressCallback | None = None, on_epoch: Callable[[dict], None] | None = None) -> TuneReport:
    """Train an adapter on `train` (loss on `held` after each epoch) and write it to `out`.

    model: the float32 base model (its weights stay frozen); its projections are wrapped in
    LoraLinear here. checkpoint: where to keep the state a resumed run continues from. start: an
    adapter to go on from (of settings.adapter's rank, alpha and targets) instead of a new one, so
    a user's own examples add to what the shipped adapter learned; `out` then holds both.
    """
    if start is not None and start.config != settings.adapter:  # before anything is packed or wrapped
        raise ConfigError(f"adapter {start.path}: rank {start.config.rank}, alpha {start.config.alpha:g}, "
                          f"targets {list(start.config.targets)}; these settings ask for rank {settings.rank}, "
                          f"alpha {settings.alpha:g}, targets {settings.targets}",
                          hint="leave --rank, --alpha and --targets out to keep the adapter's own")
    started = time.perf_counter()
    device = model.device
    # A sequence past the model's context would train positions no prompt ever reaches, in memory
    # that grows with its square: it is left out like one over --max-tokens.
    limit = min(settings.max_tokens, model.args.max_seq_len)
    sequences, left_out = pack(tokenizer, train, limit)
    held_sequences, held_out = pack(tokenizer, held, limit)
    for split, packed, given in (("training", sequences, train), ("held-aside", held_sequences, held)):
        if given and not packed:  # --eval's: no held-aside loss at all, and not a word
            if limit < settings.max_tokens:
                raise ConfigError(f"no {split} example fits in the model's context of {limit} tokens",
                                  hint="shorten the examples")
            raise ConfigError(f"no {split} example fits in --max-tokens {settings.max_tokens}",
                              hint="raise --max-tokens, or shorten the examples")
    report = TuneReport(examples=len(train), sequences=len(sequences), tokens=sum(len(s.ids) for s in sequences),
                        learned_tokens=sum(len(s.learned) for s in sequences), left_out=left_out + held_out)
    lora = attach(model, settings.adapter, seed=settings.seed)
    if start is not None:
        _start_from(model, start)
    parameters = [p for module in lora for p in (module.lora_a, module.lora_b)]
    model.to(device)
    optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(sequences) / settings.batch)
    total_steps = steps_per_epoch * settings.epochs
    step = 0
    fingerprint = {"settings": asdict(settings), "data": data_sha256(sequences), "base": base_sha256,
                   "start adapter": start.sha256 if start else ""}
    if resume and checkpoint is not None and checkpoint.exists():
        step, report.epochs, report.eval_loss_before = _restore(checkpoint, fingerprint, lora, optimizer)
    if report.eval_loss_before is None:
        report.eval_loss_before = mean_loss(model, held_sequences, settings, device)
    while step < total_steps:
        epoch, first = divmod(step, steps_per_epoch)
        order = epoch_order(len(sequences), settings.seed, epoch)
        running, counted = 0.0, 0
        for index in range(first, steps_per_epoch):
            batch = [sequences[i] for i in order[index * settings.batch:(index + 1) * settings.batch]]
            tokens = sum(len(s.learned) for s in batch)
            for group in optimizer.param_groups:
                group["lr"] = _learning_rate(settings, step, total_steps)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for sequence in batch:  # one at a time: no padding, and activations for one sequence only
                with _autocast(settings, device):
                    loss, _ = sequence_loss(model, sequence, device)
                (loss / tokens).backward()
                step_loss += loss.item()
            optimizer.step()
            step += 1
            running, counted = running + step_loss, counted + tokens
            if on_step:
                on_step(step, total_steps, step_loss / tokens)
            if checkpoint is not None and step % CHECKPOINT_STEPS == 0 and step % steps_per_epoch:
                _save_checkpoint(checkpoint, fingerprint, lora, optimizer, step, report)
        record = {"epoch": epoch + 1, "train_loss": running / max(1, counted) if counted else None,
                  "eval_loss": mean_loss(model, held_sequences, settings, device),
                  "seconds": round(time.perf_counter() - started, 1)}
        report.epochs.append(record)
        if on_epoch:
            on_epoch(record)
        if checkpoint is not None:
            _save_checkpoint(checkpoint, fingerprint, lora, optimizer, step, report)
    report.steps = step
    report.seconds = time.perf_counter() - started
    report.adapter_sha256 = save_adapter(out, adapter_tensors(model), settings.adapter, base_sha256)
    return report


def _start_from(model, start: Adapter) -> None:
    """Put the start adapter's A and B into the LoraLinear modules attach() made (of its own shapes)."""
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoraLinear):
                module.lora_a.copy_(start.tensors[f"{name}.lora_a"])
                module.lora_b.copy_(start.tensors[f"{name}.lora_b"])


def _save_checkpoint(path: Path, fingerprint: dict, lora, optimizer, step: int, report: TuneReport) -> None:
    state = {"fingerprint": json.dumps(fingerprint, sort_keys=True), "step": step,
             "adapter": [(m.lora_a.detach().clone(), m.lora_b.detach().clone()) for m in lora],
             "optimizer": optimizer.state_dict(), "epochs": json.dumps(report.epochs),
             "eval_loss_before": report.eval_loss_before}
    with part_file(path) as part:
        torch.save(state, part)


def _restore(path: Path, fingerprint: dict, lora, optimizer) -> tuple[int, list[dict], float | None]:
    try:
        state = torch.load(path, weights_only=True)
        saved = json.loads(state["fingerprint"])
    except Exception:  # noqa: BLE001 - a damaged or foreign file: whatever torch raises, its name tells no one
        raise ConfigError(f"{path}: not a checkpoint `metagen tune` wrote, or a damaged one",
                          hint="delete it to start again") from None
    if saved != json.loads(json.dumps(fingerprint, sort_keys=True)):
        changed = [k for k in fingerprint if saved.get(k) != json.loads(json.dumps(fingerprint[k]))]
        raise ConfigError(f"{path}: made with other {' and '.join(changed)}; --resume needs the same ones",
                          hint="run with the same data and settings, or delete the checkpoint to start again")
    with torch.no_grad():
        for module, (a, b) in zip(lora, state["adapter"]):
            module.lora_a.copy_(a)
            module.lora_b.copy_(b)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"]), json.loads(state["epochs"]), state["eval_loss_before"]


__all__ = ["CHECKPOINT_STEPS", "Sequence", "TuneReport", "TuneSettings", "example_tokens",
           "mean_loss", "pack", "read_examples", "sequence_loss", "tune"]
