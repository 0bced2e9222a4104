"""Logits processors, their order, and choosing tokens: hand-made logits and properties."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from metagen.bans import BannedSequencesProcessor, LogitBiasProcessor, ban_sequences, breaker_tokens, logit_bias_tokens
from metagen.config import GenerationConfig
from metagen.errors import ConfigError
from metagen.penalties import (
    COPY_PENALTY,
    DRYProcessor,
    NoCopyProcessor,
    NoRepeatNGramProcessor,
    PresenceFrequencyPenaltyProcessor,
    RepetitionPenaltyProcessor,
)
from metagen.sampling import (
    MinPProcessor,
    TemperatureProcessor,
    TopKProcessor,
    TopPProcessor,
    TypicalPProcessor,
    XTCProcessor,
    apply_processors,
    build_processors,
    describe_processors,
    greedy,
    sample,
)

NEG_INF = float("-inf")
FAST = settings(max_examples=60, deadline=None)
# distinct logits at least 0.01 apart, so that float rounding cannot make ties
SPACED = st.lists(st.integers(-800, 800), min_size=2, max_size=80, unique=True).map(
    lambda xs: [x / 100 for x in xs]
)


class FakeTokenizer:
    """Greedy longest match over printable characters plus a few multi-character tokens."""

    WORDS = ["dragon", " dragon", "Dragon", " Dragon", "DRAGON", " the", "the", " cat", "cat",
             "\n\n", ' "', "drag", "on", "::"]

    def __init__(self):
        self.vocab = [chr(c) for c in range(32, 127)] + ["\n"] + self.WORDS
        self.ids = {piece: i for i, piece in enumerate(self.vocab)}
        self.vocab_size = len(self.vocab)
        self.longest = max(len(piece) for piece in self.vocab)

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for size in range(min(self.longest, len(text) - i), 0, -1):
                piece = text[i : i + size]
                if piece in self.ids:
                    out.append(self.ids[piece])
                    i += size
                    break
            else:
                raise ValueError(f"cannot encode {text[i]!r}")
        return out

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)


TOK = FakeTokenizer()


def finite(t: torch.Tensor) -> torch.Tensor:
    return t > NEG_INF


def contains(seq: list[int], sub: tuple[int, ...]) -> bool:
    return any(tuple(seq[i : i + len(sub)]) == sub for i in range(len(seq) - len(sub) + 1))


def all_processors(batch: int = 2) -> list:
    gens = [torch.Generator().manual_seed(i) for i in range(batch)]
    return [
        RepetitionPenaltyProcessor(1.3, window=4),
        PresenceFrequencyPenaltyProcessor(0.5, 0.25),
        NoRepeatNGramProcessor(2),
        DRYProcessor(0.8, 1.75, 1, sequence_breakers=[0]),
        BannedSequencesProcessor([(3,), (1, 2)]),
        LogitBiasProcessor({4: 2.0, 5: -1.0}),
        TemperatureProcessor(0.7),
        TopKProcessor(5),
        TopPProcessor(0.8),
        MinPProcessor(0.1),
        TypicalPProcessor(0.7),
        XTCProcessor(0.05, 1.0, gens),
    ]


# --- no processor changes its inputs; every processor is row-independent ------------------


@pytest.mark.parametrize("processor", all_processors(), ids=lambda p: type(p).__name__)
def test_no_processor_modifies_its_inputs(processor):
    torch.manual_seed(0)
    tokens = torch.tensor([[-1, -1, 1, 2, 1, 2, 6], [7, 1, 2, 3, 1, 2, 1]])
    logits = torch.randn(2, 16)
    logits[1, 9] = NEG_INF
    tokens_before, logits_before = tokens.clone(), logits.clone()
    out = processor(tokens, logits)
    assert torch.equal(tokens, tokens_before)
    assert torch.equal(logits, logits_before)
    assert out.shape == logits.shape
    assert out.data_ptr() != logits.data_ptr()
    assert not torch.isnan(out).any()


def test_build_processors_full_pipeline_leaves_inputs_alone():
    cfg = GenerationConfig(
        repetition_penalty=1.2, presence_penalty=0.3, frequency_penalty=0.1, dry_multiplier=0.8,
        no_repeat_ngram_size=3, banned=("dragon",), logit_bias=(("cat", 1.0),), min_p=0.05,
        typical_p=0.9, xtc_probability=0.5,
    )
    gens = [torch.Generator().manual_seed(1)]
    processors = build_processors(cfg, TOK, gens)
    tokens = torch.tensor([TOK.encode("the cat sat on the mat, the cat")])
    logits = torch.randn(1, TOK.vocab_size)
    before = logits.clone()
    apply_processors(processors, tokens, logits)
    assert torch.equal(logits, before)


@pytest.mark.parametrize("make", [
    lambda: RepetitionPenaltyProcessor(1.3), lambda: PresenceFrequencyPenaltyProcessor(0.5, 0.2),
    lambda: NoRepeatNGramProcessor(2), lambda: DRYProcessor(1.0, 1.5, 1),
    lambda: BannedSequencesProcessor([(1, 2), (2, 3, 4)]), lambda: TopKProcessor(3),
    lambda: TopPProcessor(0.7), lambda: MinPProcessor(0.2), lambda: TypicalPProcessor(0.6),
], ids=lambda f: type(f()).__name__)
def test_rows_are_processed_independently(make):
    torch.manual_seed(3)
    tokens = torch.randint(0, 5, (3, 12))
    logits = torch.randn(3, 10)
    batch = make()(tokens, logits)
    for row in range(3):
        alone = make()(tokens[row : row + 1], logits[row : row + 1])
        assert torch.allclose(batch[row : row + 1], alone, equal_nan=False)


# --- argument checks -------------------------------------------------------------------


@pytest.mark.parametrize("make, text", [
    (lambda: TemperatureProcessor(0.0), "temperature"),
    (lambda: TemperatureProcessor(-1.0), "temperature"),
    (lambda: TopKProcessor(0), "top-k"),
    (lambda: TopKProcessor(2.5), "top-k"),
    (lambda: TopPProcessor(0.0), "top-p"),
    (lambda: TopPProcessor(1.2), "top-p"),
    (lambda: MinPProcessor(1.0), "min-p"),
    (lambda: TypicalPProcessor(0.0), "typical-p"),
    (lambda: RepetitionPenaltyProcessor(0.0), "repetition penalty"),
    (lambda: RepetitionPenaltyProcessor(1.2, window=-1), "window"),
    (lambda: PresenceFrequencyPenaltyProcessor(float("nan")), "presence"),
    (lambda: NoRepeatNGramProcessor(0), "n-gram"),
    (lambda: DRYProcessor(0.0), "multiplier"),
    (lambda: DRYProcessor(1.0, base=1.0), "base"),
    (lambda: DRYProcessor(1.0, allowed_length=0), "allowed length"),
    (lambda: XTCProcessor(0.1, 1.5, [torch.Generator()]), "XTC probability"),
    (lambda: XTCProcessor(0.1, 0.5, []), "Generator"),
    (lambda: BannedSequencesProcessor([()]), "empty"),
    (lambda: BannedSequencesProcessor([(5,)], vocab_size=5), "outside"),
    (lambda: LogitBiasProcessor({9: 1.0}, vocab_size=5), "outside"),
    (lambda: LogitBiasProcessor({1: float("inf")}), "finite"),
])
def test_processors_check_their_arguments(make, text):
    with pytest.raises(ValueError, match=text):
        make()


@pytest.mark.parametrize("make, what", [
    (lambda window: RepetitionPenaltyProcessor(1.2, window=window), "repetition"),
    (lambda window: PresenceFrequencyPenaltyProcessor(0.5, 0.5, window=window), "penalty"),
    (lambda window: DRYProcessor(0.8, window=window), "DRY"),
])
def test_every_penalty_checks_its_window_alike(make, what):
    """The three penalties checked their window each in lines of its own, and took 2.5 or True, which
    int() then cut to a window of 2 or 1 tokens."""
    with pytest.raises(ValueError, match=rf"^{what} window must be >= 0, got -1$"):
        make(-1)
    for bad in (2.5, True, "8"):
        with pytest.raises(ValueError, match=rf"^{what} window must be a whole number, got {bad!r}$".replace(".", r"\.")):
            make(bad)
    assert make(0).window == 0 and make(10**23).window == 10**23


# --- temperature and truncation ----------------------------------------------------------


def test_temperature_divides():
    logits = torch.tensor([[1.0, -2.0, 4.0]])
    assert torch.allclose(TemperatureProcessor(2.0)(None, logits), torch.tensor([[0.5, -1.0, 2.0]]))


@FAST
@given(
    values=st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=60, unique=True),
    data=st.data(),
)
def test_top_k_keeps_exactly_k(values, data):
    k = data.draw(st.integers(1, len(values)))
    logits = torch.tensor([values], dtype=torch.float64)
    out = TopKProcessor(k)(None, logits)
    kept = finite(out)[0]
    assert int(kept.sum()) == k
    assert set(kept.nonzero().flatten().tolist()) == set(logits[0].topk(k).indices.tolist())
    assert torch.equal(out[0][kept], logits[0][kept])


def test_top_k_keeps_ties():
    out = TopKProcessor(2)(None, torch.tensor([[3.0, 1.0, 3.0, 3.0, 0.0]]))
    assert finite(out).tolist() == [[True, False, True, True, False]]


def nucleus_size(logits_row: torch.Tensor, p: float) -> int:
    """Reference: the smallest number of top tokens whose probability reaches p."""
    probs = torch.softmax(logits_row.double(), -1).sort(descending=True).values
    cum = probs.cumsum(-1)
    return int((cum < p).sum()) + 1


@FAST
@given(
    values=SPACED,
    p=st.floats(0.05, 1.0),
)
def test_top_p_keeps_the_smallest_set_reaching_p(values, p):
    logits = torch.tensor([values])
    out = TopPProcessor(p)(None, logits)
    kept = finite(out)[0]
    n = int(kept.sum())
    probs = torch.softmax(logits[0].double(), -1)
    order = probs.argsort(descending=True)
    # the kept tokens are the n most likely
    assert set(order[:n].tolist()) == set(kept.nonzero().flatten().tolist())
    mass = float(probs[order[:n]].sum())
    without_last = mass - float(probs[order[n - 1]])
    assert mass >= p - 1e-5
    assert without_last < p + 1e-5
    assert torch.equal(out[0][kept], logits[0][kept])


def test_top_p_hand_made():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = TopPProcessor(0.8)(None, probs.log())
    assert finite(out).tolist() == [[True, True, False, False]]
    out = TopPProcessor(0.81)(None, probs.log())
    assert finite(out).tolist() == [[True, True, True, False]]


def test_top_p_widens_beyond_the_first_guess():
    torch.manual_seed(0)
    logits = torch.randn(2, 5000) * 0.1  # nearly flat: the nucleus holds thousands of tokens
    out = TopPProcessor(0.9)(None, logits)
    for row in range(2):
        assert int(finite(out[row]).sum()) == nucleus_size(logits[row], 0.9)


def test_top_p_after_top_k_sorts_only_the_survivors(monkeypatch):
    torch.manual_seed(0)
    logits = torch.randn(3, 49152)
    reduced = TopKProcessor(40)(None, logits)
    expected = [nucleus_size(reduced[row], 0.9) for row in range(3)]

    def no_full_sort(*args, **kwargs):
        raise AssertionError("top-p sorted the whole vocabulary")

    monkeypatch.setattr(torch, "sort", no_full_sort)
    monkeypatch.setattr(torch, "argsort", no_full_sort)
    out = TopPProcessor(0.9)(None, reduced)
    assert [int(finite(out[row]).sum()) for row in range(3)] == expected


def test_top_p_handles_a_row_with_nothing_left():
    logits = torch.tensor([[NEG_INF, NEG_INF, NEG_INF], [1.0, 2.0, 3.0]])
    out = TopPProcessor(0.5)(None, logits)
    assert not finite(out[0]).any()
    assert finite(out[1]).tolist() == [False, False, True]


@FAST
@given(
    values=st.lists(st.floats(-8, 8, allow_nan=False), min_size=2, max_size=60),
    p=st.floats(0.0, 0.99),
)
def test_min_p_drops_everything_below_p_times_top(values, p):
    logits = torch.tensor([values], dtype=torch.float64)
    out = MinPProcessor(p)(None, logits)
    probs = torch.softmax(logits[0], -1)
    kept = finite(out)[0]
    top = float(probs.max())
    for prob, keep in zip(probs.tolist(), kept.tolist()):
        if prob >= p * top * (1 + 1e-9):
            assert keep
        if prob < p * top * (1 - 1e-9):
            assert not keep
    assert kept[logits[0].argmax()]


def test_min_p_hand_made():
    probs = torch.tensor([[0.6, 0.3, 0.06, 0.04]])
    out = MinPProcessor(0.1)(None, probs.log())
    assert finite(out).tolist() == [[True, True, True, False]]


def typical_reference(scores: torch.Tensor, mass: float) -> torch.Tensor:
    """transformers' TypicalLogitsWarper with a full sort."""
    normalized = torch.log_softmax(scores, dim=-1)
    p = normalized.exp()
    ent = -(normalized * p).nansum(-1, keepdim=True)
    shifted = (-normalized - ent).abs()
    sorted_scores, sorted_indices = torch.sort(shifted, descending=False)
    sorted_logits = scores.gather(-1, sorted_indices)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    last = (cumulative < mass).sum(dim=1).clamp(max=scores.shape[-1] - 1)
    remove_sorted = sorted_scores > sorted_scores.gather(1, last.view(-1, 1))
    remove = remove_sorted.scatter(1, sorted_indices, remove_sorted)
    return scores.masked_fill(remove, NEG_INF)


@FAST
@given(
    values=SPACED,
    mass=st.floats(0.05, 0.99),
)
def test_typical_p_matches_the_reference(values, mass):
    logits = torch.tensor([values], dtype=torch.float64)
    ours = finite(TypicalPProcessor(mass)(None, logits))
    theirs = finite(typical_reference(logits, mass))
    assert torch.equal(ours, theirs)


def test_typical_p_after_top_k_matches_the_reference_on_the_survivors():
    torch.manual_seed(1)
    logits = TopKProcessor(30)(None, torch.randn(2, 2000))
    ours = TypicalPProcessor(0.5)(None, logits)
    assert torch.equal(finite(ours), finite(typical_reference(logits, 0.5)))


# --- XTC --------------------------------------------------------------------------------


def test_xtc_removes_top_choices_but_the_least_likely():
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.06, 0.04]])
    out = XTCProcessor(0.1, 1.0, [torch.Generator().manual_seed(0)])(None, probs.log())
    assert finite(out).tolist() == [[False, False, True, True, True]]


def test_xtc_needs_two_top_choices():
    probs = torch.tensor([[0.8, 0.08, 0.07, 0.05]])
    out = XTCProcessor(0.1, 1.0, [torch.Generator().manual_seed(0)])(None, probs.log())
    assert finite(out).all()


def test_xtc_rows_alone_and_in_a_batch_agree():
    torch.manual_seed(2)
    logits = torch.randn(4, 30)
    batch = XTCProcessor(0.05, 0.5, [torch.Generator().manual_seed(s) for s in range(4)])
    outs = [batch(None, logits) for _ in range(5)]
    for row in range(4):
        alone = XTCProcessor(0.05, 0.5, [torch.Generator().manual_seed(row)])
        for step in range(5):
            assert torch.equal(alone(None, logits[row : row + 1]), outs[step][row : row + 1])


def test_xtc_wrong_number_of_generators():
    with pytest.raises(ValueError, match="2 generators for 3 rows"):
        XTCProcessor(0.1, 1.0, [torch.Generator(), torch.Generator()])(None, torch.zeros(3, 4))


# --- penalties --------------------------------------------------------------------------


def test_repetition_penalty_divides_positive_and_multiplies_negative():
    logits = torch.tensor([[2.0, -2.0, 1.0, -1.0]])
    tokens = torch.tensor([[0, 1, 0]])
    out = RepetitionPenaltyProcessor(2.0)(tokens, logits)
    assert out.tolist() == [[1.0, -4.0, 1.0, -1.0]]  # token 0 penalized once, not twice


@pytest.mark.parametrize("window", [3, 10**23])
def test_a_window_longer_than_the_tokens_is_all_of_them_without_a_warning(window, recwarn):
    """--repetition-window 99999999999999999999999 printed torch's UserWarning (truncating the slice)."""
    tokens, logits = torch.tensor([[0, 1, 2]]), torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert RepetitionPenaltyProcessor(2.0, window=window)(tokens, logits).tolist() == [[0.5, 1.0, 1.5, 4.0]]
    assert PresenceFrequencyPenaltyProcessor(1.0, 1.0, window)(tokens, logits).tolist() == [[-1.0, 0.0, 1.0, 4.0]]
    assert not recwarn.list


def test_repetition_penalty_window():
    logits = torch.tensor([[2.0, 2.0, 2.0]])
    out = RepetitionPenaltyProcessor(2.0, window=2)(torch.tensor([[0, 1, 2]]), logits)
    assert out.tolist() == [[2.0, 1.0, 1.0]]


@pytest.mark.parametrize("make", [
    lambda: RepetitionPenaltyProcessor(1.5), lambda: PresenceFrequencyPenaltyProcessor(0.3, 0.7),
    lambda: NoRepeatNGramProcessor(2), lambda: DRYProcessor(1.0, 2.0, 1),
    lambda: BannedSequencesProcessor([(1, 2), (3, 1, 2)]),
], ids=lambda f: type(f()).__name__)
def test_padding_is_ignored(make):
    torch.manual_seed(4)
    logits = torch.randn(1, 8)
    plain = torch.tensor([[3, 1, 2, 5, 3, 1]])
    padded = torch.tensor([[-1, -1, -1, 3, 1, 2, 5, 3, 1]])
    assert torch.equal(make()(plain, logits), make()(padded, logits))
    # an all-padding row (a finished one) is left as it is
    assert torch.equal(make()(torch.full((1, 5), -1), logits), logits)


def test_exempt_tokens_are_never_penalized():
    logits = torch.tensor([[2.0, 2.0, 2.0, 2.0]])
    tokens = torch.tensor([[0, 1, 2, 1]])
    out = RepetitionPenaltyProcessor(2.0, exempt={1})(tokens, logits)
    assert out.tolist() == [[1.0, 2.0, 1.0, 2.0]]
    out = PresenceFrequencyPenaltyProcessor(presence=1.0, frequency=0.5, exempt={1, 2})(tokens, torch.zeros(1, 4))
    assert out.tolist() == [[-1.5, 0.0, 0.0, 0.0]]
    assert "except 2 name tokens" in PresenceFrequencyPenaltyProcessor(1.0, exempt={1, 2}).describe()


def test_penalty_exempt_words_reach_the_processors():
    from metagen.bans import exempt_tokens

    name = "Mira Okonkwo"
    ids = exempt_tokens([name], TOK)
    assert set(TOK.encode(name)) <= ids and set(TOK.encode(" " + name)) <= ids
    cfg = GenerationConfig(repetition_penalty=1.5, presence_penalty=0.2, penalty_exempt=(name,))
    penalties = build_processors(cfg, TOK)[:2]
    assert all(set(p.exempt.tolist()) == ids for p in penalties)
    history = torch.tensor([TOK.encode(" " + name)])
    logits = torch.ones(1, TOK.vocab_size)
    for processor in penalties:  # the name's own tokens keep their logits
        assert torch.equal(processor(history, logits)[0, history[0]], logits[0, history[0]])


def test_presence_and_frequency():
    logits = torch.zeros(1, 4)
    out = PresenceFrequencyPenaltyProcessor(presence=1.0, frequency=0.5)(torch.tensor([[2, 2, 2, 1]]), logits)
    assert out.tolist() == [[0.0, -1.5, -2.5, 0.0]]


def test_no_repeat_ngram_hand_made():
    tokens = torch.tensor([[1, 2, 3, 1, 2]])
    out = NoRepeatNGramProcessor(3)(tokens, torch.zeros(1, 5))
    assert finite(out).tolist() == [[True, True, True, False, True]]
    out = NoRepeatNGramProcessor(1)(tokens, torch.zeros(1, 5))
    assert finite(out).tolist() == [[True, False, False, False, True]]


@pytest.mark.parametrize("n", [2, 3, 4])
def test_no_repeat_ngram_in_a_sampling_loop(n):
    vocab = 12 if n == 2 else 6
    for seed in range(8):
        gen = torch.Generator().manual_seed(seed)
        logits_gen = torch.Generator().manual_seed(100 + seed)
        processor = NoRepeatNGramProcessor(n)
        tokens = torch.tensor([[0, 1]])
        for _ in range(40):
            logits = torch.randn(1, vocab, generator=logits_gen) * 3
            nxt = sample(processor(tokens, logits), [gen])
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        seq = tokens[0].tolist()
        grams = [tuple(seq[i : i + n]) for i in range(len(seq) - n + 1)]
        assert len(grams) == len(set(grams))


def dry_reference(ids: list[int], scores: list[float], multiplier, base, allowed, breakers, cap=50):
    """text-generation-webui's DRY loop, verbatim in spirit."""
    scores = list(scores)
    last = ids[-1]
    if last in breakers:
        return scores
    lengths: dict[int, int] = {}
    for i, val in enumerate(ids[:-1]):
        if val != last:
            continue
        nxt = ids[i + 1]
        if nxt in breakers:
            continue
        length = 1
        while length < cap:
            j = i - length
            if j < 0:
                break
            previous = ids[-(length + 1)]
            if ids[j] != previous or previous in breakers:
                break
            length += 1
        lengths[nxt] = max(length, lengths.get(nxt, 0))
    for token, length in lengths.items():
        if length >= allowed:
            scores[token] -= multiplier * base ** (length - allowed)
    return scores


@FAST
@given(
    ids=st.lists(st.integers(0, 4), min_size=1, max_size=40),
    pad=st.integers(0, 3),
    allowed=st.integers(1, 3),
    breakers=st.sets(st.integers(0, 4), max_size=2),
    cap=st.sampled_from([3, 50]),
)
def test_dry_matches_the_reference(ids, pad, allowed, breakers, cap):
    scores = torch.linspace(-1, 1, 5, dtype=torch.float64)
    tokens = torch.tensor([[-1] * pad + ids])
    ours = DRYProcessor(0.8, 1.75, allowed, breakers, max_match=cap)(tokens, scores[None])
    theirs = dry_reference(ids, scores.tolist(), 0.8, 1.75, allowed, breakers, cap)
    assert torch.allclose(ours[0], torch.tensor(theirs, dtype=torch.float64))


def test_dry_hand_made():
    # "a b c x a b" -> "c" would repeat "a b c": match length 2, allowed 2 -> penalty 1.0
    tokens = torch.tensor([[0, 1, 2, 3, 0, 1]])
    out = DRYProcessor(1.0, 1.75, 2)(tokens, torch.zeros(1, 4))
    assert out.tolist() == [[0.0, 0.0, -1.0, 0.0]]
    # a breaker inside the repeat stops the match
    out = DRYProcessor(1.0, 1.75, 2, sequence_breakers=[0])(tokens, torch.zeros(1, 4))
    assert out.tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_breaker_tokens_from_strings():
    ids = breaker_tokens(["\n", ":", '"'], TOK)
    assert TOK.ids["\n"] in ids and TOK.ids[":"] in ids
    assert TOK.ids['"'] in ids and TOK.ids[' "'] in ids


# --- bans and biases --------------------------------------------------------------------


def test_ban_sequences_variants():
    seqs = ban_sequences(["dragon"], TOK)
    for text in ["dragon", " dragon", "Dragon", " Dragon", "DRAGON", " DRAGON"]:
        assert tuple(TOK.encode(text)) in seqs
    assert len(seqs) == len(set(seqs))
    phrase = ban_sequences(["dark lord"], TOK)
    for text in ["dark lord", " Dark lord", "Dark Lord", " DARK LORD"]:
        assert tuple(TOK.encode(text)) in phrase


def test_banned_sequences_hand_made():
    processor = BannedSequencesProcessor([(4,), (1, 2), (1, 1, 3)])
    out = processor(torch.tensor([[0, 1], [1, 1]]), torch.zeros(2, 5))
    assert finite(out).tolist() == [
        [True, True, False, True, False],
        [True, True, False, False, False],
    ]
    # too short a history: only single tokens are banned
    out = processor(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 5))
    assert finite(out).tolist() == [[True, True, True, True, False]]


def test_banned_words_are_never_sampled():
    cfg = GenerationConfig(banned=("dog", "dragon"), temperature=1.0, top_k=0, top_p=1.0,
                           repetition_penalty=1.0)
    processors = build_processors(cfg, TOK)
    banned = ban_sequences(cfg.banned, TOK)
    tempting = [TOK.ids[c] for c in "dogDOGr"] + [TOK.ids["dragon"], TOK.ids[" dragon"], TOK.ids[" "]]
    for seed in range(25):
        gen = torch.Generator().manual_seed(seed)
        noise = torch.Generator().manual_seed(1000 + seed)
        tokens = torch.tensor([TOK.encode("a")])
        for _ in range(60):
            logits = torch.randn(1, TOK.vocab_size, generator=noise)
            logits[0, tempting] += 6.0
            nxt = sample(apply_processors(processors, tokens, logits), [gen])
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        seq = tokens[0].tolist()
        assert not any(contains(seq, b) for b in banned)
        text = TOK.decode(seq)
        # "dog" can only be spelled d-o-g with this vocabulary, so the text never has it
        assert "dog" not in text and "Dog" not in text and "DOG" not in text


def test_logit_bias_tokens():
    bias = logit_bias_tokens([("dragon", 2.0), ("#5", -1.0)], TOK)
    assert bias[5] == -1.0
    for text in ["dragon", " dragon", "Dragon", " Dragon", "DRAGON"]:
        assert bias[TOK.encode(text)[0]] == 2.0
    with pytest.raises(ConfigError, match="#999"):
        logit_bias_tokens([("#999", 1.0)], TOK)


def test_logit_bias_adds():
    out = LogitBiasProcessor({1: 2.0, 3: -1.0})(None, torch.zeros(2, 4))
    assert out.tolist() == [[0.0, 2.0, 0.0, -1.0]] * 2


# --- the pipeline -----------------------------------------------------------------------


def names(processors) -> list[str]:
    return [type(p).__name__ for p in processors]


def test_build_order_is_documented_order():
    cfg = GenerationConfig(
        presence_penalty=0.1, dry_multiplier=0.5, no_repeat_ngram_size=3, banned=("cat",),
        logit_bias=(("the", 1.0),), min_p=0.05, typical_p=0.9, xtc_probability=0.5,
    )
    processors = build_processors(cfg, TOK, [torch.Generator()])
    assert names(processors) == [
        "RepetitionPenaltyProcessor", "PresenceFrequencyPenaltyProcessor", "DRYProcessor",
        "NoRepeatNGramProcessor", "BannedSequencesProcessor", "LogitBiasProcessor",
        "TemperatureProcessor", "TopKProcessor", "TopPProcessor", "MinPProcessor",
        "TypicalPProcessor", "XTCProcessor",
    ]
    lines = describe_processors(processors)
    assert lines[0].startswith("1. repetition penalty 1.1")
    assert lines[7] == "8. top-k 40"
    assert len(lines) == 12


def test_no_copy_sees_the_prompt_the_penalties_do_not():
    cfg = GenerationConfig(repetition_penalty=2.0, no_copy_ngram_size=2, temperature=1.0, top_k=0, top_p=1.0)
    processors = build_processors(cfg, TOK)
    assert names(processors) == ["RepetitionPenaltyProcessor", "NoCopyProcessor"]
    generated = torch.tensor([[3]])
    prompt_and_generated = torch.tensor([[3, 1, 0, 3]])  # the prompt holds "3 1": after 3, 1 would copy it
    out = apply_processors(processors, generated, torch.ones(1, 5), prompt_and_generated)
    assert out[0, 1].item() == 1.0 - COPY_PENALTY  # the copying token falls below every other
    assert out[0, 3].item() == 0.5 and out[0, 0].item() == 1.0  # the penalty saw only the generated 3
    alone = apply_processors(processors, generated, torch.ones(1, 5))  # no prompt given: the tokens serve both
    assert torch.isfinite(alone).all()


def test_no_copy_never_leaves_no_token():
    # every token but 1 is banned elsewhere and 1 would copy "3 1": the copy is written, not a crash
    logits = torch.full((1, 5), float("-inf"))
    logits[0, 1] = 2.0
    out = NoCopyProcessor(2)(torch.tensor([[3, 1, 3]]), logits)
    assert greedy(out).tolist() == [1]
    assert out[0, 1].item() == 2.0 - COPY_PENALTY and (out[0, [0, 2, 3, 4]] == float("-inf")).all()


def test_build_skips_no_ops():
    cfg = GenerationConfig(temperature=1.0, top_k=0, top_p=1.0, repetition_penalty=1.0)
    assert build_processors(cfg, TOK) == []
    big_k = GenerationConfig(top_k=TOK.vocab_size, top_p=1.0, repetition_penalty=1.0)
    assert names(build_processors(big_k, TOK)) == ["TemperatureProcessor"]


@pytest.mark.parametrize("cfg", [
    GenerationConfig(temperature=0.0, banned=("cat",), no_repeat_ngram_size=2, min_p=0.1),
    GenerationConfig(strategy="greedy", banned=("cat",), no_repeat_ngram_size=2, min_p=0.1),
    GenerationConfig(strategy="beam", num_beams=4, banned=("cat",), no_repeat_ngram_size=2, min_p=0.1),
], ids=["temperature-0", "greedy", "beam"])
def test_greedy_and_beam_keep_penalties_and_bans_only(cfg):
    assert names(build_processors(cfg, TOK)) == [
        "RepetitionPenaltyProcessor", "NoRepeatNGramProcessor", "BannedSequencesProcessor",
    ]


def test_temperature_zero_equals_greedy():
    torch.manual_seed(5)
    tokens = torch.randint(0, TOK.vocab_size, (3, 10))
    logits = torch.randn(3, TOK.vocab_size)
    zero = build_processors(GenerationConfig(temperature=0.0), TOK)
    penalties_only = build_processors(
        GenerationConfig(temperature=1.0, top_k=0, top_p=1.0), TOK
    )
    expected = greedy(apply_processors(penalties_only, tokens, logits))
    assert torch.equal(greedy(apply_processors(zero, tokens, logits)), expected)
    # and sampling with only the top token left always gives it
    one = build_processors(GenerationConfig(top_k=1), TOK)
    for seed in range(10):
        gens = [torch.Generator().manual_seed(seed + 10 * r) for r in range(3)]
        assert torch.equal(sample(apply_processors(one, tokens, logits), gens), expected)


def test_xtc_without_generators_is_an_error():
    with pytest.raises(ValueError, match="Generator"):
        build_processors(GenerationConfig(xtc_probability=0.5), TOK)


# --- choosing -------------------------------------------------------------------------


def test_greedy_is_argmax():
    assert greedy(torch.tensor([[0.0, 3.0, 1.0], [5.0, NEG_INF, 1.0]])).tolist() == [1, 0]


def test_sample_rows_alone_equal_rows_in_a_batch():
    torch.manual_seed(6)
    logits = torch.randn(5, 300)
    batch_gens = [torch.Generator().manual_seed(40 + r) for r in range(5)]
    batch = [sample(logits, batch_gens) for _ in range(20)]
    for row in range(5):
        gen = torch.Generator().manual_seed(40 + row)
        alone = [int(sample(logits[row : row + 1], [gen])) for _ in range(20)]
        assert alone == [int(step[row]) for step in batch]


def test_sample_is_reproducible_and_respects_the_distribution():
    logits = torch.tensor([[0.0, math.log(3.0), NEG_INF]])
    gen = torch.Generator().manual_seed(0)
    draws = [int(sample(logits, [gen])) for _ in range(2000)]
    assert 2 not in draws
    assert 0.70 < draws.count(1) / len(draws) < 0.80
    again = torch.Generator().manual_seed(0)
    assert draws[:50] == [int(sample(logits, [again])) for _ in range(50)]


@pytest.mark.parametrize("allowed", [[0], [299], [5, 7], [0, 299]])
def test_sample_never_draws_a_removed_token(allowed):
    logits = torch.full((1, 300), NEG_INF)
    logits[0, allowed] = 0.0
    gen = torch.Generator().manual_seed(3)
    assert {int(sample(logits, [gen])) for _ in range(300)} == set(allowed)


@pytest.mark.parametrize("choose", [greedy, lambda x: sample(x, [torch.Generator()] * x.shape[0])],
                         ids=["greedy", "sample"])
def test_no_token_left_is_a_clear_error(choose):
    logits = torch.tensor([[0.0, 1.0], [NEG_INF, NEG_INF]])
    with pytest.raises(ValueError, match=r"no token is left to choose in row\(s\) \[1\]"):
        choose(logits)
    with pytest.raises(ValueError, match="NaN"):
        choose(torch.tensor([[0.0, float("nan")]]))


def test_sample_needs_one_generator_per_row():
    with pytest.raises(ValueError, match="1 generators for 2 rows"):
        sample(torch.zeros(2, 3), [torch.Generator()])


def test_script_guard_bans_foreign_and_mojibake_tokens_but_not_exempt_names(tiny_generator):
    from metagen.bans import script_guard

    tokenizer = tiny_generator.tokenizer
    guard = script_guard(("latin",), (), tokenizer)
    banned = set(guard.banned.tolist())
    byte_of = {tokenizer.vocabulary()[i]: i for i in range(tokenizer.vocab_size)}
    lead_cjk = byte_of[tokenizer.vocabulary()[tokenizer.encode("白")[0]]]
    assert lead_cjk in banned and tokenizer.encode("the")[0] not in banned
    spared = script_guard(("latin",), ("白",), tokenizer)
    assert lead_cjk not in set(spared.banned.tolist())
    logits = torch.zeros(1, tokenizer.vocab_size)
    out = guard(torch.zeros(1, 0, dtype=torch.long), logits)
    assert torch.isinf(out[0, lead_cjk]) and not torch.isinf(logits).any()


def test_sentence_opening_bans_a_comma_or_full_stop_after_a_title_case_head_only(tiny_generator):
    from metagen.bans import SentenceOpeningProcessor

    tokenizer = tiny_generator.tokenizer
    guard = SentenceOpeningProcessor(tokenizer, within=8)
    comma, stop, word = tokenizer.encode(",")[0], tokenizer.encode(".")[0], tokenizer.encode("a")[0]
    assert {comma, stop} <= set(guard.breakers.tolist()) and word not in set(guard.breakers.tolist())
    head, lower = tokenizer.encode("The Docks"), tokenizer.encode("the docks")
    width = max(len(head), len(lower))
    rows = torch.tensor([[-1] * (width - len(head)) + head, [-1] * (width - len(lower)) + lower])
    out = guard(rows, torch.zeros(2, tokenizer.vocab_size))
    assert torch.isinf(out[0, comma]) and torch.isinf(out[0, stop]) and out[0, word] == 0
    assert torch.isfinite(out[1]).all()  # "the docks" is the start of a sentence already
    assert torch.isfinite(guard(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, tokenizer.vocab_size))).all()
    late = SentenceOpeningProcessor(tokenizer, within=len(head) - 1)
    assert torch.isfinite(late(rows[:1], torch.zeros(1, tokenizer.vocab_size))).all()  # past the opening


def test_sentence_opening_sees_the_generated_tokens_whatever_the_history_holds(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    cfg = GenerationConfig(sentence_opening=True, penalize_prompt=True, repetition_penalty=1.0, temperature=0)
    processors = build_processors(cfg, tokenizer)
    assert names(processors) == ["SentenceOpeningProcessor"]
    comma = tokenizer.encode(",")[0]
    generated = torch.tensor([tokenizer.encode("The Docks")])
    history = torch.cat([torch.tensor([tokenizer.encode("Describe them.")]), generated], dim=1)
    out = apply_processors(processors, history, torch.zeros(1, tokenizer.vocab_size), generated=generated)
    assert torch.isinf(out[0, comma])
    assert torch.isfinite(apply_processors(processors, history, torch.zeros(1, tokenizer.vocab_size))).all()


class WordTokenizer:
    """A tokenizer whose few words are one token each after a space (" was"); any other
    character is a token of its own. Vocabulary in GPT-2's byte-level spelling (Ġ = space)."""

    def __init__(self, words):
        self.pieces = [chr(c) for c in range(33, 127)] + ["Ġ", *(f"Ġ{w}" for w in words), "'s", "'re"]
        self.vocab_size = len(self.pieces)

    def _text(self, piece):
        return piece.replace("Ġ", " ")

    def encode(self, text):
        ids, at = [], 0
        while at < len(text):
            best = max((i for i, p in enumerate(self.pieces) if text.startswith(self._text(p), at)),
                       key=lambda i: len(self.pieces[i]))
            ids.append(best)
            at += len(self._text(self.pieces[best]))
        return ids

    def decode(self, ids):
        return "".join(self._text(self.pieces[i]) for i in ids)

    def vocabulary(self):
        return tuple(self.pieces)


def test_the_tense_guard_lowers_the_other_tenses_verbs_in_narration_only():
    from metagen.bans import TenseGuardProcessor

    tok = WordTokenizer(["was", "were", "is", "are", "stands", "said", "inn"])
    ids = {w: tok.encode(" " + w)[0] for w in ("was", "were", "is", "are", "stands", "said")}
    narrating, quoting = tok.encode("The inn"), tok.encode('She said "We')
    width = max(len(narrating), len(quoting))
    rows = torch.tensor([[-1] * (width - len(narrating)) + narrating, [-1] * (width - len(quoting)) + quoting])
    past = TenseGuardProcessor("past", tok, bias=4.0)(rows, torch.zeros(2, tok.vocab_size))
    assert [past[0, ids[w]].item() for w in ("is", "are", "stands")] == [-4.0] * 3
    assert [past[0, ids[w]].item() for w in ("was", "were", "said")] == [0.0] * 3
    assert (past[1] == 0).all()  # inside quoted speech a speaker may say "is"
    present = TenseGuardProcessor("present", tok, bias=4.0)(rows, torch.zeros(2, tok.vocab_size))
    assert present[0, ids["was"]] == -4.0 and present[0, ids["were"]] == -4.0 and present[0, ids["is"]] == 0
    closed = torch.tensor([tok.encode('She said "We go." The')])  # the quotation is over: narration again
    assert TenseGuardProcessor("past", tok)(closed, torch.zeros(1, tok.vocab_size))[0, ids["is"]] < 0


def test_the_tense_guard_lowers_its_and_theyre_when_the_past_is_asked():
    from metagen.bans import TenseGuardProcessor

    tok = WordTokenizer(["it", "inn", "they"])
    s, re_ = tok.encode("it's")[-1], tok.encode("it're")[-1]
    rows = torch.tensor([tok.encode(" it"), tok.encode(" inn"), tok.encode(" they")])
    past = TenseGuardProcessor("past", tok, bias=3.0)(rows, torch.zeros(3, tok.vocab_size))
    assert past[0, s] == -3.0 and past[1, s] == 0  # "it's" is present; "the inn's" a possessive
    assert past[2, re_] == -3.0 and past[2, s] == 0 and past[0, re_] == 0
    assert (TenseGuardProcessor("present", tok)(rows, torch.zeros(3, tok.vocab_size)) == 0).all()


def test_the_tense_guard_leaves_alone_words_the_tokenizer_splits(tiny_generator):
    from metagen.bans import TenseGuardProcessor

    tokenizer = tiny_generator.tokenizer  # its vocabulary spells " was" and " is" in pieces
    guard = TenseGuardProcessor("past", tokenizer)
    assert len(guard.other_ids) == 0
    logits = torch.randn(1, tokenizer.vocab_size)
    assert torch.equal(guard(torch.tensor([tokenizer.encode("The inn")]), logits), logits)


def test_the_tense_guard_is_a_setting_with_three_values(tiny_generator):
    cfg = GenerationConfig(tense_guard="past", repetition_penalty=1.0, temperature=0)
    assert names(build_processors(cfg, tiny_generator.tokenizer)) == ["TenseGuardProcessor"]
    assert GenerationConfig().tense_guard == "off"
    with pytest.raises(ConfigError, match="--tense-guard must be one of past, present, off"):
        GenerationConfig(tense_guard="future")


@pytest.mark.parametrize("head, banned", [
    ("The Docks", True), ("Ember Keep", True), ("The fountain", True), ("The old stone well", True),
    ("the docks", False), ("In the fog", False), ("The old stone well creaks", False),
])
def test_sentence_opening_knows_a_name_or_short_noun_phrase(tiny_generator, head, banned):
    from metagen.bans import SentenceOpeningProcessor

    tokenizer = tiny_generator.tokenizer
    guard = SentenceOpeningProcessor(tokenizer, within=64)
    comma = tokenizer.encode(",")[0]
    out = guard(torch.tensor([tokenizer.encode(head)]), torch.zeros(1, tokenizer.vocab_size))
    assert bool(torch.isinf(out[0, comma])) is banned
