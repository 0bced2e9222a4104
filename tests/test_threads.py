"""A decoding step's thread count: chosen by timing, restored after, and never a change to the logits."""

from __future__ import annotations

import pytest
import torch

from metagen import threads
from metagen.model import Transformer, random_weights
from metagen.threads import StepThreads, size_class, thread_counts


@pytest.fixture
def two_threads():
    """torch on 2 threads for the test (also on a 1-CPU machine: the threads then share it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def wide_model(weight_format: str) -> Transformer:
    """Wide enough that torch splits its matmuls over threads (the tiny model's are too small to)."""
    from tests.conftest import tiny_args

    args = tiny_args(2048)
    from dataclasses import replace

    args = replace(args, dim=256, ffn_dim=768, n_heads=4, n_kv_heads=2)
    return Transformer.from_weights(args, random_weights(args, seed=3), weight_format)


class FakeClock:
    """A clock on which a step on n threads "takes" seconds[n]: each reading moves it on by the
    time of the count torch runs on, so a step's two readings are seconds[n] apart."""

    def __init__(self, seconds: dict[int, float]):
        self.seconds, self.now = seconds, 0.0

    def __call__(self) -> float:
        self.now += self.seconds[torch.get_num_threads()]
        return self.now


def test_the_counts_tried_are_one_the_powers_of_two_and_all():
    assert thread_counts(1) == (1,)
    assert thread_counts(2) == (1, 2)
    assert thread_counts(6) == (1, 2, 4, 6)
    assert thread_counts(8) == (1, 2, 4, 8)
    assert [size_class(rows) for rows in (1, 2, 3, 4, 7, 8)] == [1, 2, 2, 3, 3, 4]


@pytest.mark.parametrize("faster", [1, 2])
def test_the_faster_count_is_chosen_and_torch_is_restored_after_each_step(two_threads, faster):
    clock = FakeClock({faster: 0.01, 3 - faster: 0.03})
    tuner = StepThreads(clock=clock)
    seen = []
    for _ in range(2 * threads.TRIALS):
        assert tuner.chosen(1) is None
        with tuner.step(1):
            seen.append(torch.get_num_threads())
            pass
        assert torch.get_num_threads() == 2
    assert sorted(seen) == [1] * threads.TRIALS + [2] * threads.TRIALS
    assert tuner.chosen(1) == faster
    with tuner.step(1):
        assert torch.get_num_threads() == faster
    assert tuner.chosen(4) is None  # another size is timed on its own


def test_one_slow_step_does_not_decide(two_threads):
    clock = FakeClock({1: 0.01, 2: 0.02})
    tuner = StepThreads(clock=clock)
    for i in range(2 * threads.TRIALS):
        with tuner.step(1):
            pass
            if i == 0:  # the first step on one thread meets a busy machine
                clock.now += 1.0
    assert tuner.chosen(1) == 1


def test_a_choice_is_timed_again_after_many_steps(two_threads, monkeypatch):
    monkeypatch.setattr(threads, "RETUNE_AFTER", 5)
    clock = FakeClock({1: 0.01, 2: 0.03})
    tuner = StepThreads(clock=clock)
    for _ in range(2 * threads.TRIALS):
        with tuner.step(1):
            pass
    assert tuner.chosen(1) == 1
    clock.seconds = {1: 0.05, 2: 0.01}  # the machine changed
    for _ in range(5 + 2 * threads.TRIALS):
        with tuner.step(1):
            pass
    assert tuner.chosen(1) == 2


def test_one_thread_is_left_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tuner = StepThreads(clock=FakeClock({1: 0.01}))
        with tuner.step(1):
            pass
        assert tuner.chosen(1) is None  # nothing to choose between
    finally:
        torch.set_num_threads(before)


def test_a_decoding_loop_runs_on_one_thread_but_its_model_passes(two_threads):
    clock = FakeClock({1: 0.03, 2: 0.01})
    tuner = StepThreads(clock=clock)
    with tuner.decoding():
        assert torch.get_num_threads() == 1
        with tuner.prompt():
            assert torch.get_num_threads() == 2  # a prompt's pass keeps torch's own count
        for _ in range(2 * threads.TRIALS):
            with tuner.step(1):
                pass
            assert torch.get_num_threads() == 1
        assert tuner.chosen(1) == 2  # timed against the count outside the loop
        with tuner.decoding():  # nested: still the one loop
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_an_error_in_a_step_restores_the_count(two_threads):
    tuner = StepThreads(clock=FakeClock({1: 0.01, 2: 0.02}))
    with pytest.raises(RuntimeError):
        with tuner.decoding():
            with tuner.step(1):
                raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


def test_only_the_formats_whose_steps_never_split_a_sum_are_timed():
    assert [wide_model(f).step_threads.tuned for f in ("float32", "bfloat16", "int8", "int4")] == [
        False, False, True, True]


def test_an_untimed_step_runs_on_the_count_outside_the_loop(two_threads):
    tuner = StepThreads(tuned=False, clock=FakeClock({1: 0.01, 2: 0.03}))
    with tuner.decoding():
        for _ in range(2 * threads.TRIALS):
            with tuner.step(1):
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1
    assert tuner.chosen(1) is None


@pytest.mark.parametrize("weight_format", ["int8", "int4"])
@pytest.mark.parametrize("rows", [1, 5])
def test_a_step_gives_the_same_logits_on_any_thread_count(two_threads, weight_format, rows):
    """What makes timing the counts safe: the choice can change the speed, never the text."""
    model = wide_model(weight_format)
    prompt = torch.tensor([[(7 * i + row) % 2048 for i in range(20)] for row in range(rows)])
    logits = {}
    for count in (1, 2, 3, 4):
        cache = model.new_cache(rows, 40)
        model(prompt, cache)  # the prompt on torch's own 2 threads, as always
        torch.set_num_threads(count)
        tokens, steps = prompt[:, -1:], []
        for _ in range(6):
            # _forward_pieces: the pass itself, without the tuner choosing a count of its own
            steps.append(model._forward_pieces(tokens, cache, None, last_only=False)[:, -1])
            tokens = steps[-1].argmax(-1, keepdim=True)
        torch.set_num_threads(2)
        logits[count] = torch.stack(steps)
    assert all(torch.equal(logits[1], logits[count]) for count in (2, 3, 4))


@pytest.mark.parametrize("weight_format", ["int8", "int4"])
def test_candidates_sample_the_same_text_whichever_count_wins(tmp_path, two_threads, weight_format):
    """Four rows sharing one prompt (a unit's candidates), sampled: the same text with 1 or 2
    threads chosen for the steps."""
    from metagen.config import GenerationConfig
    from metagen.generator import load_model
    from tests.conftest import write_tiny_gguf

    path = write_tiny_gguf(tmp_path / "wide.gguf", dim=256, ffn_dim=768)
    cfg = GenerationConfig(strategy="sample", max_new_tokens=24, min_new_tokens=24, temperature=1.0)
    texts = []
    for faster in (1, 2):
        generator = load_model(str(path), dtype=weight_format)
        generator.model.step_threads = StepThreads(clock=FakeClock({faster: 0.01, 3 - faster: 0.03}))
        prompt = generator.tokenizer.encode("the sea in the west")
        texts.append([c.text for c in generator.complete([prompt] * 4, cfg, seeds=[1, 2, 3, 4])])
        assert generator.model.step_threads.chosen(4) == faster
    assert texts[0] == texts[1]
