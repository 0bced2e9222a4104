"""GenerationConfig: every decoding setting in one frozen, validated dataclass.

Each field is declared once, here: type, default, limits, command-line flag, --help line and
docs line (a metagen.setting.Setting). The checks, the command-line options, the flag names
in messages and the tables of docs/decoding.md (`write_settings_doc`) are derived from it.
Settings arrive in layers (built-in defaults < world defaults < batch job < command line)
and `merge_settings` is the one place they are combined.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from metagen.errors import ConfigError
from metagen.scripts import ANY, SCRIPTS
from metagen.setting import NON_BLANK, NON_EMPTY, AtLeast, OneOf, Setting, Within, render_doc, setting
from metagen.text import closest, kind_named, kind_of, number_shown

STRATEGIES = ("greedy", "sample", "beam")
TENSE_GUARDS = ("past", "present", "off")
PRONOUN_GUARDS = ("redraw", "on", "off")
MAX_INT = 2**63  # every whole-number setting stays below this, from a flag, a jobs file or a world file
MAX_SEED = MAX_INT  # seeds must fit a torch.Generator: 0 <= seed < 2**63
# Bounds that keep float32 logits finite and memory small; checked before anything is built.
MIN_TEMPERATURE, MAX_TEMPERATURE = 1e-3, 100.0
MIN_REPETITION_PENALTY = 1e-3
MAX_PENALTY = 100.0  # |presence|, |frequency|, repetition, DRY multiplier
MAX_DRY_BASE = 10.0
MAX_BIAS = 1000.0  # |logit bias|
MAX_BEAMS = 64  # beams, and texts returned per request
MAX_LENGTH_PENALTY = 10.0  # |length penalty|: length ** 10 stays finite for any context
MAX_CONTRAST = 4.0  # context contrast: past a few, the fact list is pasted back and grammar goes
MAX_CANDIDATES = 16  # versions of one unit (a scene, a story beat, a dialogue line) to choose from
# Scenes decoded together at most (--batch-size; pipeline.check_batch_size). Each brings its candidates
# as rows, so one model call holds up to 256 * 16 = 4,096 rows, whose own keys and values for the default
# model's 200-token scenes already take about 38 GB in float32: a larger batch would only run out of memory.
MAX_BATCH_SIZE = 256
CLI_BEAMS = 4  # beams when the command line says --strategy beam without --beams


@dataclass(frozen=True)
class GenerationConfig:
    """How to turn the model's logits into text. Build with `merge_settings` or `from_dict`."""

    # Each field: setting(default, flag, limits, ...); metagen.setting.Setting says what each part is for.
    # Field order is the order of --help, of the docs tables and of the settings each output file records.
    strategy: str = setting(
        "sample", "--strategy", OneOf(STRATEGIES), section="length", help=f"{' | '.join(STRATEGIES)}.",
        doc="How the next token is chosen. `sample` at temperature 0 runs as greedy.")
    max_new_tokens: int = setting(
        256, "--max-tokens", AtLeast(1), section="length", help="Most tokens to generate, counting the words metagen opens a scene or story paragraph with.",
        help_default=False,  # a story's default comes from its --length
        doc="Most tokens to write. The prompt plus this must fit the model's context (read from the model "
            "file); the error says how many would fit. The words metagen writes to open a scene or a story "
            "beat (\"The Lantern Bazaar smells of\": 8 tokens, docs/quality.md) count toward it, so a scene "
            "with `--max-tokens 8` can hold none of the model's own.")
    min_new_tokens: int = setting(
        0, "--min-tokens", AtLeast(0), note="at most `max_new_tokens`", section="length",
        help="No end (end-of-text or a stop string) until this many tokens.",
        doc="End-of-text, and any token that holds a stop string, is suppressed until this many tokens are written.")
    temperature: float = setting(
        0.8, "--temperature", Within(0, MAX_TEMPERATURE), short="-t", section="sampling",
        note=f"0 = greedy; otherwise at least {MIN_TEMPERATURE:g}", help="Sampling temperature, >= 0; 0 = greedy.",
        help_default="0.8; 0.6 for story, scene and dialogue", doc_default="0.8 (story, scene, dialogue: 0.6)",
        doc="Divides the logits. Below 1 is safer and plainer, above 1 wilder. 0 means greedy.")
    top_k: int = setting(
        40, "--top-k", AtLeast(0), note="0 = off", section="sampling",
        help="Keep the k most likely tokens; 0 = off.",
        doc="Keep only the k most likely tokens.")
    top_p: float = setting(
        0.95, "--top-p", Within(0, 1, "(]"), note="1 = off", section="sampling",
        help="Nucleus: smallest set with this probability mass, {limits}.",
        doc="Keep the smallest set of most likely tokens whose probability reaches p (nucleus sampling).")
    min_p: float = setting(
        0.0, "--min-p", Within(0, 1, "[)"), note="0 = off", section="sampling",
        help="Drop tokens below min-p x the top probability, {limits}.",
        help_default="0 = off; 0.1 for story, scene and dialogue", doc_default="0 (story, scene, dialogue: 0.1)",
        doc="Drop tokens less likely than `min_p` times the most likely token.")
    typical_p: float = setting(
        1.0, "--typical-p", Within(0, 1, "(]"), note="1 = off", section="sampling", help_default="1 = off",
        help="Locally typical sampling mass, {limits}.",
        doc="Locally typical sampling: keep the tokens whose surprise is closest to the expected surprise, "
            "up to this probability mass.")
    repetition_penalty: float = setting(
        1.1, "--repetition-penalty", Within(MIN_REPETITION_PENALTY, MAX_PENALTY), note="1 = off",
        section="penalties", help="Penalize seen tokens (> 0; 1 = off).",
        doc="For each token already seen: a positive logit is divided by it, a negative one multiplied (CTRL). "
            "Each token is penalized once however often it appeared.")
    repetition_window: int = setting(
        256, "--repetition-window", AtLeast(0), note="0 = all", section="penalties",
        help="Penalties look at the last N tokens; 0 = all.",
        doc="The penalties (repetition, presence/frequency, DRY) look at the last N tokens.")
    presence_penalty: float = setting(
        0.0, "--presence-penalty", Within(-MAX_PENALTY, MAX_PENALTY), section="penalties",
        help="Subtracted once from each seen token's logit.",
        doc="Subtracted once from the logit of every token seen (negative values encourage repeats).")
    frequency_penalty: float = setting(
        0.0, "--frequency-penalty", Within(-MAX_PENALTY, MAX_PENALTY), section="penalties",
        help="Subtracted per occurrence of a seen token.",
        doc="Subtracted from a seen token's logit once per occurrence.")
    penalize_prompt: bool = setting(
        False, "--penalize-prompt", section="penalties", help="Penalties also count the prompt's tokens.",
        help_default="no; yes for dialogue, whose earlier lines are prompt", doc_default="off (dialogue: on)",
        doc="Penalties, no-repeat n-grams and banned sequences also see the prompt (within `repetition_window`). "
            "A dialogue line is written after the earlier lines, which are prompt, so dialogue turns it on unless "
            "a world, job or flag says `false` (`--no-penalize-prompt`).")
    penalty_exempt: tuple[str, ...] = setting(
        (), "--penalty-exempt", NON_EMPTY, section="penalties",
        help="A word the repetition, presence and frequency penalties never count (repeatable).",
        doc="Words whose tokens the repetition, presence and frequency penalties never count (each word as "
            "written, alone and after a space), for words that must be free to recur. Exempting every character "
            "and place name of the example worlds was measured and made outputs worse (more invented names, less "
            "variety: experiments/log.md), so nothing is exempt by default.")
    no_repeat_ngram_size: int = setting(
        0, "--no-repeat-ngram", AtLeast(0), note="0 = off", section="penalties", help_default=False,
        help="Never repeat an n-gram of this size; 0 = off.",
        doc="Never write an n-gram of this many tokens twice. Blunt: 3 or more suits most prose.")
    no_copy_ngram_size: int = setting(
        0, "--no-copy-ngram", AtLeast(0), note="0 = off", section="penalties",
        help_default="0 = off; 10 for story, scene and dialogue",
        help="Never write this many tokens in a row that the prompt or the text already holds; 0 = off.",
        doc_default="0 (story, scene, dialogue: 10)",
        doc="Never write this many tokens in a row that already stand in the prompt (the world's facts, the story "
            "so far) or in the text. Unlike `no_repeat_ngram_size` with `penalize_prompt`, it leaves the repetition "
            "penalties off the prompt, so names stay free; long enough (10) to let names through, it stops a small "
            "model pasting a fact list or restarting the story from its first paragraph.")
    dry_multiplier: float = setting(
        0.0, "--dry-multiplier", Within(0, MAX_PENALTY), note="0 = off", section="penalties", help_default=False,
        help="DRY repetition penalty strength; 0 = off.",
        doc="DRY (\"don't repeat yourself\"): the token that would extend a repeat of earlier text loses "
            "`multiplier * base ** (length - allowed_length)`, where `length` is how long the repeat already is. "
            "0.8 is a common choice.")
    dry_base: float = setting(
        1.75, "--dry-base", Within(1, MAX_DRY_BASE, "(]"), section="penalties",
        help="DRY growth per extra repeated token (> 1).",
        doc="How fast the DRY penalty grows with each extra repeated token.")
    dry_allowed_length: int = setting(
        2, "--dry-allowed-length", AtLeast(1), section="penalties", help="Repeats this long are free under DRY.",
        doc="Repeats up to this many tokens are not penalized by DRY.")
    dry_sequence_breakers: tuple[str, ...] = setting(
        ("\n", ":", '"', "*"), "--dry-breaker", NON_EMPTY, section="penalties", help_default=False,
        help="A string that ends a DRY match (repeatable).",
        doc="A repeat is not followed across these strings (so names after \"Speaker:\" lines are not punished). "
            "Each string stands for the last token of its spelling alone, after a space and after a letter.")
    xtc_threshold: float = setting(
        0.1, "--xtc-threshold", Within(0, 0.5), section="sampling",
        help="XTC: tokens this likely are top choices, {limits}.",
        doc="XTC: tokens at least this likely count as \"top choices\".")
    xtc_probability: float = setting(
        0.0, "--xtc-probability", Within(0, 1), note="0 = off", section="sampling", help_default=False,
        help="XTC: chance per token of excluding top choices; 0 = off.",
        doc="XTC (\"exclude top choices\"): at each token, with this chance, remove every top choice except the "
            "least likely one (when there are at least two). Makes prose less predictable without raising the "
            "temperature.")
    banned: tuple[str, ...] = setting(
        (), "--ban", NON_BLANK, section="bans", help_default=False,
        help="A word or phrase never to produce, any case (repeatable).",
        doc="Words or phrases never written. Each is banned as written, lower case, Capitalized, UPPER CASE and "
            "Title Case, each with and without a leading space.")
    logit_bias: tuple[tuple[str, float], ...] = setting(
        (), "--logit-bias", note=f"[-{MAX_BIAS:g}, {MAX_BIAS:g}]", section="bans", help_default=False,
        help="WORD=BIAS or #ID=BIAS added to a token's logit (repeatable).",
        doc="`WORD=BIAS`: BIAS is added to the logit of the first token of each variant of WORD (the same "
            "variants as `--ban`), or of one token id written `#123`. Negative discourages, positive encourages; "
            "use `--ban` to forbid.")
    num_beams: int = setting(
        1, "--beams", Within(1, MAX_BEAMS), note="at least 2 with `--strategy beam`", section="beams",
        help="Beams for --strategy beam.", help_default=str(CLI_BEAMS),
        doc_default=f"1 (the flag defaults to {CLI_BEAMS})",
        doc="Hypotheses kept at each step. Ignored by the other strategies.")
    length_penalty: float = setting(
        1.0, "--length-penalty", Within(-MAX_LENGTH_PENALTY, MAX_LENGTH_PENALTY), section="beams",
        help="Beam score = logprob / length ** this.",
        doc="A finished hypothesis scores `sum_logprobs / length ** length_penalty`; above 0 favours longer texts.")
    early_stopping: bool = setting(
        True, "--early-stopping", section="beams", help="Beam: stop once enough hypotheses are done.",
        doc="Stop as soon as `num_beams` hypotheses have finished, rather than while a running beam could "
            "still win.")
    num_return_sequences: int = setting(
        1, "--num-return", Within(1, MAX_BEAMS), note="at most `num_beams` with beam", section="length",
        help="Beam: how many of the n-best to return.",
        doc="Texts per request. Not allowed with greedy decoding, where every copy would be the same.")
    stop: tuple[str, ...] = setting(
        (), "--stop", NON_EMPTY, section="length", help_default=False,
        help="End the text before this string (repeatable).",
        doc="Writing ends before the first of these strings.")
    max_sentences: int = setting(
        0, "--max-sentences", AtLeast(0), note="0 = no limit", section="length",
        help="End the text after this many whole sentences; 0 = no limit.",
        help_default="0; 4 for story (a paragraph a beat) and scene, 2 for a dialogue line",
        doc_default="0 (story, scene: 4; dialogue: 2 a line)",
        doc="Writing ends once the text holds this many whole sentences (or two or more and a paragraph break), "
            "and the text keeps just those: a small model writes its best sentences first and drifts after a "
            "few. A story counts each beat's paragraph on its own. Stopping there rather than cutting a longer "
            "text afterwards spares the tokens after the last kept sentence.")
    seed: int | None = setting(
        None, "--seed", note="0 to 2**63 - 1", short="-s", section="length", help_default=False,
        doc_default="random", help="Seed for reproducible output; drawn at random and recorded if omitted.",
        doc="Same seed, same settings, same model: byte-identical text, also inside a batch (each text draws "
            "from its own generator).")
    scripts: tuple[str, ...] = setting(
        (), "--scripts", note=", ".join(f"`{s}`" for s in SCRIPTS) + f", or `{ANY}` (no guard)",
        section="scripts",
        help="A writing system the text may use: latin, greek, cyrillic, hebrew, arabic, indic, thai, hangul, "
             f"cjk, ... (repeatable); '{ANY}' turns the guard off.",
        help_default="the world's prose's scripts; names keep their own",
        doc_default="the scripts of the world's prose and the request's words (`latin` for an English world); "
                    "none for `metagen generate`",
        doc="Tokens that would write a letter of another script, or mojibake (`Ã`, `Â`, a control character "
            "other than tab and line breaks, a broken byte), are never chosen. A script counts as the world's when at least 20% of the letters of its prose "
            "(names left out) are in it.")
    script_exempt: tuple[str, ...] = setting(
        (), "--script-exempt", NON_EMPTY, section="scripts", option=False, help="",
        doc_default="the world's names written in another script (an English world's `白云`)",
        doc="The tokens that spell these words stay allowed, so a name keeps its own script while the prose "
            "stays in the world's.")
    sentence_opening: bool = setting(
        False, "--sentence-opening", section="bans", help="Open the text with a sentence, not a name and a comma.",
        help_default="no; yes for story and scene", doc_default="off (story, scene: on)",
        doc="While the text is only a name or a short noun phrase (\"The Container Docks\", \"The fountain\"), no "
            "token may go on with a comma, colon, semicolon, full stop, dash or line break, so the model writes a "
            "sentence (\"The Container Docks are ...\") rather than a label or a verbless fragment (\"The Container Docks, a "
            "bustling hub of ...\"), the commonest opening of a small model's scenes and story paragraphs. Each "
            "story beat is a text of its own.")
    avoid_stock: bool = setting(
        False, "--avoid-stock", section="bans", help="Never write the stock words of machine-written description.",
        help_default="no; yes for story and scene", doc_default="off (story, scene: on)",
        doc="The words and phrases of metagen/data/stock-phrases.txt (\"marvel\", \"bustling\", \"tapestry\", \"a "
            "place of\", \"modern engineering\", ...), filler that readers mark in a small model's descriptions, are "
            "added to `banned`, except those the world itself writes (metagen.grounding.stock_phrases); so are the "
            "words of courtship and of marriage (\"beloved\", \"in love\", \"married\", \"wedding\", ...) in a world "
            "whose own words use none of that group (metagen.kinship.courtship_words): readers passed over invented "
            "romances among the cast before any other fault. A story beat whose kept paragraph brings in a thing the "
            "world never has, the sea (\"sea\", \"ocean\", ...) or a creature of legend (\"dragon\", \"wizard\", ...) where "
            "neither the world's words nor the request's name one of them or a sign of one "
            "(metagen.grounding.absent_things), is drawn again with those words banned (the beat's critic record says "
            "`drawn_again_for`): Ashenmere's lake became \"the sea\" in 35 of 123 of its stories. Words the request "
            "itself writes (premise, plan) stay writable.")
    tense_guard: str = setting(
        "off", "--tense-guard", OneOf(TENSE_GUARDS), section="bans",
        help="Keep narration outside quotes in this tense: past | present | off.",
        doc="Outside quoted speech, the verb forms that belong only to the other tense (\"was\", \"were\", "
            "\"stood\" when the present is kept; \"is\", \"are\", \"stands\", \"it's\" when the past is) lose 4 "
            "from their logits (metagen.bans.TenseGuardProcessor). It keeps a scene or story in the tense its "
            "world asks for (wrong-tense scenes 60% -> 3%), but read blind its texts lost (15 pairs to 23: the "
            "model then uses fewer of the place's present-tense facts and invents more), so it is off unless "
            "asked for, e.g. in a world's `defaults.story`.")
    kin_guard: tuple[str, ...] = setting(
        (), "--kin-guard", section="bans", option=False, help="",
        doc_default="story and scene: one rule per character of the world (below); none for dialogue and "
                    "`metagen generate`",
        doc="Right after a possessive whose owner is clear (\"Ysolde's\", \"her\" in narration about Ysolde "
            "alone, \"his own\"), the family words that character has no relative for lose 10 from their logits "
            "(metagen.kin_guard): no son for a queen whose only child is a daughter, no husband for a character "
            "the world gives none. metagen writes one rule per character from the world, "
            "`NAME / OTHER NAME (she|he|they|it|?): family words they may be given` (their ties to the cast, "
            "of the right sex, and the family words of their own card), and records them in the front matter; "
            "`kin_guard: []` in a world's defaults or a jobs file turns the guard off.")
    pronoun_guard: str = setting(
        "redraw", "--pronoun-guard", OneOf(PRONOUN_GUARDS), section="bans",
        help="Keep each character's pronoun in narration about them: redraw | on | off.",
        doc="While the nearest narrated sentence that names anyone names one character alone, the pronouns "
            "they do not take (\"he\", \"him\", \"his\", \"himself\" for a \"she\") lose 10 from their logits "
            "(metagen.pronoun_guard; the names and pronouns are the kin guard's rules). `redraw`: a story beat whose "
            "kept paragraph gives one of the cast another's pronoun (metagen.grounding.pronoun_slips: \"Thorne "
            "smiled, and he\", of a woman), unless their own card says that pronoun of someone (\"he has not told "
            "the bees she died\"), is drawn again with the guard on and the same seeds; the new paragraph is kept "
            "when it has fewer such slips, and its critic record says `drawn_again_for`. Other stories keep their "
            "bytes. `on`: every draw of every kind has the guard.")
    context_contrast: float = setting(
        0.0, "--contrast", Within(0, MAX_CONTRAST), note="0 = off", section="bans",
        help="Favour words the world's facts make likelier than the bare request does, {limits}; 0 = off.",
        help_default="0 = off; 0.5 for dialogue", doc_default="0 (dialogue: 0.5)",
        doc="Context-aware decoding (Shi et al., 2023). The model also reads the request without the world's facts "
            "(a scene: the place's name and the task; a story beat: the cast and place by name only; a dialogue "
            "line: the cast by name and the same sample lines, no descriptions, ties or lore: with the sample lines in "
            "one prompt only, the contrast favoured their words, and held-aside dialogues reworked them, \"Ten past "
            "thirty.\") and, at each token, every token at "
            "least a tenth as likely as the likeliest gains `contrast * (log p(token | facts) - log p(token | no "
            "facts))`: what the model would write about any place (\"a place where people come to relax\") loses, "
            "what the facts support gains. A scene starts it after its place's name. Read blind, scenes written with "
            "0.5 were preferred in 60 of 90 pairs, dialogues in 20 of 29; stories were not; since scenes are chosen among "
            "eight by the model's fluency (0.24.0), scenes without it were read 23 of 40 for them and are written in two "
            "thirds of the time, so it is off for scenes (docs/quality.md). The fact-free rows "
            "join the candidates' model pass when they share one prompt (one call of twice the rows a token), else run "
            "their own. Greedy and sampling; beam search ignores it; `metagen chat` and `metagen generate` have no "
            "fact-free prompt and refuse it.")
    candidates: int = setting(
        1, "--candidates", Within(1, MAX_CANDIDATES), note="more than 1 needs sampling", section="candidates",
        help="Write this many versions of each scene, story beat or dialogue line and keep the one the critic "
             f"scores best, 1..{MAX_CANDIDATES}.",
        help_default="per kind, see docs/quality.md",
        doc_default="8 for scene, 4 for story and dialogue when sampling; 1 otherwise",
        doc="Each unit (a scene, a story beat, a dialogue line) is written this many times in one batch, their "
            "shared prompt processed once, and the version `metagen.critic` scores best is kept. The k-th "
            "candidate of a unit with seed S samples with seed `S + k * 0x9E3779B97F4A7C15` (mod 2**63), so "
            "candidate 0 samples as `--candidates 1` does. Some candidates open on words metagen writes (a scene's "
            "start words, half of a story beat's: docs/quality.md), so candidate 0 of several need not be what "
            "one candidate writes. A candidate that ends leaves the batch, so the others' steps no longer carry it "
            "(8 scenes of one call: 35.8 -> 27.6 s on 2 AVX-512 cores); what each writes does not change.")

    def __post_init__(self) -> None:
        for name in SETTINGS:
            object.__setattr__(self, name, check_setting(name, getattr(self, name)))
        self._check_the_rest()

    @property
    def effective_strategy(self) -> str:
        """The strategy actually run: "sample" at temperature 0 is greedy."""
        if self.strategy == "sample" and self.temperature == 0:
            return "greedy"
        return self.strategy

    def check_context(self, prompt_tokens: int, context_length: int) -> None:
        """Raise ConfigError when the prompt plus max_new_tokens overflows the model's context."""
        if prompt_tokens + self.max_new_tokens <= context_length:
            return
        room = context_length - prompt_tokens
        flag = CLI_NAMES["max_new_tokens"]
        if room < 1:
            raise ConfigError(
                f"the prompt has {prompt_tokens} tokens and the model's context is "
                f"{context_length}; no room is left for {flag}",
                hint="shorten the prompt",
            )
        raise ConfigError(
            f"{flag} {self.max_new_tokens} does not fit: the prompt has {prompt_tokens} tokens "
            f"and the model's context is {context_length}; use at most {room}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain JSON/YAML values (tuples become lists)."""
        out: dict[str, Any] = {}
        for name in SETTINGS:
            value = getattr(self, name)
            if name == "logit_bias":
                value = [[key, bias] for key, bias in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GenerationConfig:
        """Build from a mapping of field names; unknown keys and wrong types raise ConfigError."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"generation settings must be a mapping, got {kind_of(d)}")
        for key in d:
            if key not in SETTINGS:
                raise ConfigError(f"unknown generation setting {key!r}", hint=_did_you_mean(str(key)))
        return cls(**d)

    def _check_the_rest(self) -> None:
        """What one field's limits cannot say: limits that depend on other fields, and the odd shapes."""
        flag = CLI_NAMES
        if self.min_new_tokens > self.max_new_tokens:
            raise ConfigError(f"{flag['min_new_tokens']} must be at most {flag['max_new_tokens']} "
                              f"({self.max_new_tokens}), got {self.min_new_tokens}")
        if 0 < self.temperature < MIN_TEMPERATURE:
            raise ConfigError(f"{flag['temperature']} must be 0 (greedy) or at least {MIN_TEMPERATURE:g}, "
                              f"got {self.temperature:g}", hint="a smaller one overflows the logits")
        beam = f"{flag['strategy']} beam"
        if self.strategy == "beam" and self.num_beams < 2:
            raise ConfigError(f"{flag['num_beams']} must be at least 2 with {beam}, got {self.num_beams}")
        if self.strategy == "beam" and self.num_return_sequences > self.num_beams:
            raise ConfigError(f"{flag['num_return_sequences']} must be at most {flag['num_beams']} ({self.num_beams}) "
                              f"with {beam}, got {self.num_return_sequences}")
        if self.effective_strategy == "greedy" and self.num_return_sequences > 1:
            raise ConfigError(
                f"{flag['num_return_sequences']} {self.num_return_sequences} with greedy decoding would give "
                "identical texts",
                hint=f"use {flag['strategy']} sample with a temperature above 0, or {beam}",
            )
        if self.candidates > 1 and self.effective_strategy != "sample":
            raise ConfigError(f"{flag['candidates']} {self.candidates} needs sampling: greedy and beam search write "
                              "the same text every time",
                              hint=f"use {flag['strategy']} sample with a temperature above 0")
        if self.seed is not None and not 0 <= self.seed < MAX_SEED:
            raise ConfigError(f"{flag['seed']} must be in [0, 2**63), got {number_shown(self.seed)}")


# Every setting, in field order, with its name, type and default filled in from the field.
SETTINGS: dict[str, Setting] = {
    f.name: dataclasses.replace(f.metadata["setting"], name=f.name, type=f.type, default=f.default)
    for f in dataclasses.fields(GenerationConfig)
}
CLI_NAMES: dict[str, str] = {name: s.flag for name, s in SETTINGS.items()}  # how messages name each field


def check_setting(name: str, value: Any) -> Any:
    """One setting's value on its own (its type and its field's limits, not what depends on other
    fields), normalized as _coerce does; ConfigError naming its flag."""
    value = _coerce(name, value)
    limits = SETTINGS[name].limits
    if limits is not None:
        limits.check(SETTINGS[name].flag, value)
    if name in _SHAPE_CHECKS:
        _SHAPE_CHECKS[name](value)
    return value


def _check_logit_bias(pairs: tuple[tuple[str, float], ...]) -> None:
    bias = CLI_NAMES["logit_bias"]
    for key, value in pairs:
        if not key.strip():
            raise ConfigError(f"{bias} needs a word or #token-id, got an empty one")
        # ASCII digits only: str.isdigit() also passes '²' (int() then fails) and '١' (read as 1)
        if key.startswith("#") and not (key[1:].isascii() and key[1:].isdigit()):
            raise ConfigError(f"{bias} token ids are written #123, got {key!r}")
        if abs(value) > MAX_BIAS:
            raise ConfigError(f"{bias} {key}={value:g}: the bias must be in [-{MAX_BIAS:g}, {MAX_BIAS:g}]",
                              hint="-100 already bans a word")


def _check_kin_guard(rules: tuple[str, ...]) -> None:
    if rules:
        from metagen.kinship import check_rules  # the world's modules: `metagen generate` never loads them

        check_rules(rules)


def _check_scripts(scripts: tuple[str, ...]) -> None:
    unknown = [s for s in scripts if s not in (*SCRIPTS, ANY)]
    if unknown:
        raise ConfigError(f"{CLI_NAMES['scripts']} {unknown[0]!r} is not a script; use {', '.join((*SCRIPTS, ANY))}")


# The shapes of a value that its type and range cannot say, checked with the value alone, so that a
# jobs file names a bad one at its own line (it had been named at each job's).
_SHAPE_CHECKS = {"logit_bias": _check_logit_bias, "scripts": _check_scripts, "kin_guard": _check_kin_guard}


def setting_words(name: str) -> str:
    """How a hint names a setting: its flag, and the field as world and jobs files spell it."""
    return f"{CLI_NAMES[name]} ({name} in a world's defaults or a jobs file's settings)"


# What _coerce accepts for each field type, as messages say it.
_TYPE_WORDS = {
    "str": kind_named(str),
    "int": kind_named(int),
    "float": "a finite number",
    "bool": kind_named(bool),
    "tuple[str, ...]": "a list of text",
    "tuple[tuple[str, float], ...]": "a mapping of word or #id to a finite number (or a list of [word, number] pairs)",
    "int | None": f"{kind_named(int)} or null",
}


def candidate_seed(seed: int, k: int) -> int:
    """The seed of a unit's k-th candidate: the unit's own seed first, so one candidate is today's text."""
    return (seed + k * 0x9E3779B97F4A7C15) % MAX_SEED  # a large odd step: candidates of seeds S, S+1 never meet


def merge_settings(*layers: Mapping[str, Any] | GenerationConfig | None) -> GenerationConfig:
    """Merge settings layers, lowest precedence first; later non-None values win.

    The usual order is world defaults, then a batch job's settings, then command-line
    flags (pass None for a flag that was not given); built-in defaults sit under all.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer is None:
            continue
        if isinstance(layer, GenerationConfig):
            layer = layer.to_dict()
        if not isinstance(layer, Mapping):
            raise ConfigError(f"generation settings must be a mapping, got {kind_of(layer)}")
        for key, value in layer.items():
            if value is not None:
                merged[key] = value
    return GenerationConfig.from_dict(merged)


def _wrong_type(name: str, value: Any) -> ConfigError:
    return ConfigError(
        f"{name} ({CLI_NAMES[name]}) must be {_TYPE_WORDS[SETTINGS[name].type]}, "
        f"got {value!r} ({kind_of(value)})"
    )


def _coerce(name: str, value: Any) -> Any:
    """Check `value` is of the field's type; return it normalized (lists -> tuples, int -> float)."""
    kind = SETTINGS[name].type
    if kind == "str":
        if not isinstance(value, str):
            raise _wrong_type(name, value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _wrong_type(name, value)
        return value
    if kind == "int" or (kind == "int | None" and value is not None):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(name, value)
        if kind == "int" and value >= MAX_INT:  # as a world file holds it; a seed has its own range (_check_the_rest)
            check_whole_number(CLI_NAMES[name], value)
        return int(value)
    if kind == "int | None":
        return None
    if kind == "float":
        return _finite(name, value)
    if kind == "tuple[str, ...]":
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise _wrong_type(name, value)
        return tuple(_utf8(name, v) for v in value)
    # logit bias: a mapping, or a sequence of (key, number) pairs
    items = list(value.items()) if isinstance(value, Mapping) else value
    if not isinstance(items, (list, tuple)):
        raise _wrong_type(name, value)
    pairs = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2 or not isinstance(item[0], str):
            raise _wrong_type(name, value)
        pairs.append((_utf8(name, item[0]), _finite(name, item[1], whole=value)))
    return tuple(pairs)


def check_whole_number(flag: str, value: int) -> int:
    """A whole number as every flag, jobs file and world file must give it: fewer than 2**63 in size
    (19 digits), else ConfigError in one line that names the flag."""
    if abs(value) < MAX_INT:
        return value
    bound = "below 2**63" if value > 0 else "above -2**63"
    raise ConfigError(f"{flag} must be {bound} (at most {len(str(MAX_INT))} digits), got {number_shown(value)}")


def _utf8(name: str, text: str) -> str:
    """text, unless it holds lone surrogates (argv bytes that were not UTF-8): those cannot be tokenized."""
    if any("\ud800" <= c <= "\udfff" for c in text):
        raise ConfigError(f"{CLI_NAMES[name]} {text!r} is not UTF-8 text",
                          hint="check the terminal's encoding: LANG or LC_ALL should name UTF-8")
    return text


def _finite(name: str, value: Any, whole: Any = None) -> float:
    try:
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int with hundreds of digits
        ok = False
    if not ok:
        raise _wrong_type(name, value if whole is None else whole)
    return float(value)


def _did_you_mean(key: str) -> str | None:
    """A hint naming the field closest to `key`, also matching CLI spellings like "top-p"."""
    candidates = {name: name for name in SETTINGS}
    for name, flag in CLI_NAMES.items():
        candidates.setdefault(flag.lstrip("-"), name)
        candidates.setdefault(flag.lstrip("-").replace("-", "_"), name)
    normal = key.strip().lstrip("-")
    close = closest(normal, candidates) or closest(normal.replace("-", "_"), candidates)
    if not close:
        return f"known settings: {', '.join(SETTINGS)}"
    return f"did you mean {candidates[close]!r}?"


def write_settings_doc(path: str = "docs/decoding.md") -> None:
    """Rewrite the settings tables of docs/decoding.md from the declarations above."""
    doc = Path(path)
    doc.write_text(render_doc(doc.read_text(encoding="utf-8"), SETTINGS.values()), encoding="utf-8")


__all__ = ["CLI_NAMES", "MAX_BATCH_SIZE", "MAX_CANDIDATES", "MAX_INT", "SETTINGS", "STRATEGIES", "GenerationConfig", "candidate_seed",
           "check_whole_number", "merge_settings", "write_settings_doc"]
