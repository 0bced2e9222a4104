"""metagen.tune and `metagen tune`: examples are read and packed exactly, a few steps lower the
held-aside loss, the same seed gives the same adapter, and a stopped run resumes where it was."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from metagen.corpus import Example
from metagen.errors import ConfigError
from metagen.lora import load_adapter
from metagen.tune import TuneSettings, example_tokens, mean_loss, pack, read_examples, tune
from tests.conftest import invoke, load_tiny_generator, write_tiny_gguf

SYSTEM = {"role": "system", "content": "You write about the well."}


def _story(n=3):
    """The beats of one story: each prompt holds the paragraphs before it."""
    chat, examples = [SYSTEM, {"role": "user", "content": "Begin."}], []
    for i in range(n):
        text = f"the well is deep {i} and the water is cold."
        examples.append(Example("beat", "w", tuple(chat), text))
        chat = [*chat, {"role": "assistant", "content": text}, {"role": "user", "content": "Go on."}]
    return examples


def _line(i):
    return Example("line", "w", (SYSTEM,), f" the well {i}\n", prefix="Ada:", end_of_turn=False)


def test_read_examples_takes_chats_and_plain_pairs(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [_story(1)[0].to_dict(), {"prompt": "Say hi.", "completion": "hi there."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    examples = read_examples(path)
    assert examples[0] == _story(1)[0]
    assert examples[1].messages == ({"role": "user", "content": "Say hi."},) and examples[1].end_of_turn
    path.write_text(json.dumps({"prompt": "Say hi.", "completion": "hi there.\n", "end_of_turn": False}) + "\n")
    assert not read_examples(path)[0].end_of_turn  # a plain pair's end_of_turn: false was ignored


@pytest.mark.parametrize("line, message", [
    ("{not json", "d.jsonl:2: not JSON"),
    ("[" * 100_000 + "]" * 100_000, r"d.jsonl:2: not JSON \(nested too deeply\)"),
    ('{"prompt": 1' + "0" * 5000 + "}", r"d.jsonl:2: not JSON \(a number has more than 4,300 digits\)"),  # was int()'s own words
    ('{"prompt": "\\ud800", "completion": "x"}', r"d.jsonl:2: not JSON \(\\ud800 is half of a UTF-16 surrogate pair"),
    ('{"prompt": "x"}', 'd.jsonl:2: an example needs a non-empty "completion"'),
    ('{"messages": [{"role": 1}], "completion": "x"}', 'd.jsonl:2: "messages" must be a list'),
    ('{"completion": "x"}', 'd.jsonl:2: an example needs "messages"'),
    ('{"messages": [{"role": "user", "content": "a"}], "prompt": "b", "completion": "c"}',
     'd.jsonl:2: an example gives both "messages" and "prompt"'),
    ('{"messages": [{"role": "wizard", "content": "x"}], "completion": "y"}',
     "d.jsonl:2: unknown role 'wizard'; roles are system, user, assistant"),
    ('{"messages": [{"role": "user", "content": "x", "name": "Ada"}], "completion": "y"}',
     "d.jsonl:2: a message holds the unknown field 'name'"),
    ('{"prompt": " ", "completion": "y"}', 'd.jsonl:2: an example\'s "prompt" is empty'),
    # in text.kind_of's words, as every other file's messages ("not a string", "an object" had been JSON's own)
    ('{"prompt": "a", "completion": "b", "end_of_turn": "no"}', 'd.jsonl:2: "end_of_turn" must be true/false, got text'),
    ('{"prompt": "a", "completion": "b", "end_of_trun": false}', "d.jsonl:2: unknown field 'end_of_trun'"),
    ('{"prompt": 5, "completion": "b"}', 'd.jsonl:2: "prompt" must be text, got a whole number'),
    ("[1, 2]", "d.jsonl:2: an example must be a JSON object, got a list"),
    ("null", "d.jsonl:2: an example must be a JSON object, got nothing"),
])
def test_a_bad_line_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n' + line + "\n")
    with pytest.raises(ConfigError, match=message):
        read_examples(path)


def test_a_data_file_that_cannot_be_read_is_one_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match="missing.jsonl: no such examples file"):
        read_examples(tmp_path / "missing.jsonl")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError, match="folder is a folder, not an examples file"):
        read_examples(tmp_path / "folder")
    (tmp_path / "loop.jsonl").symlink_to("loop.jsonl")
    with pytest.raises(ConfigError, match=r"loop.jsonl is a symbolic link in a loop \(it leads back to itself\)"):
        read_examples(tmp_path / "loop.jsonl")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match=r"latin1.jsonl:2: not UTF-8 text \(byte 0xe9\)"):
        read_examples(tmp_path / "latin1.jsonl")


def test_an_empty_file_is_refused(tmp_path):
    (tmp_path / "d.jsonl").write_text("\n")
    with pytest.raises(ConfigError, match="holds no examples"):
        read_examples(tmp_path / "d.jsonl")


def test_a_key_given_twice_is_refused_not_the_last_one_taken(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "a", "completion": "b", "completion": "c"}\n')
    with pytest.raises(ConfigError) as error:
        read_examples(path)
    assert error.value.one_line() == (f"{path}:2: not JSON (the key 'completion' is given twice in one object) "
                                      "(one JSON object a line)")


def test_examples_saved_with_a_byte_order_mark_are_read(tmp_path):
    """Notepad's UTF-8 starts with a BOM: line 1 was 'not JSON (Unexpected UTF-8 BOM (decode using utf-8-sig))'."""
    path = tmp_path / "d.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"prompt": "Say hi.", "completion": "hi."}\r\n{"prompt": "a", "completion": "b"}\r\n')
    assert [e.completion for e in read_examples(path)] == ["hi.", "b"]


def test_a_stories_beats_pack_into_one_sequence_that_learns_each_completion(tiny_generator):
    tokenizer = tiny_generator.tokenizer
    story = _story(3)
    sequences, left_out = pack(tokenizer, story + [_line(1), _line(2)], max_tokens=4096)
    assert left_out == 0
    lengths = sorted(len(s.learned) for s in sequences)
    per_beat = [len(example_tokens(tokenizer, e)[1]) for e in story]
    # one sequence for the story (every beat learned, its end-of-turn too); the two dialogue lines
    # share their prompt but neither's tokens start the other's: two sequences
    assert len(sequences) == 3 and sum(per_beat) in lengths
    longest = max(sequences, key=lambda s: len(s.ids))
    prompt, completion = example_tokens(tokenizer, story[-1])
    assert list(longest.ids) == prompt + completion
    for example in story:  # each beat's completion is learned right after its own prompt
        prompt, completion = example_tokens(tokenizer, example)
        assert set(range(len(prompt), len(prompt) + len(completion))) <= set(longest.learned)
    assert completion[-1] == tokenizer.encode("<|im_end|>")[0]
    assert pack(tokenizer, story, max_tokens=10) == ([], 3)


def _fresh(tmp_path, name="m.gguf"):
    return load_tiny_generator(write_tiny_gguf(tmp_path / name), "0" * 64)


def test_a_few_steps_lower_the_held_aside_loss_and_the_adapter_changes_the_logits(tmp_path):
    generator = _fresh(tmp_path)
    data = _story(3) + [_line(i) for i in range(4)]
    settings = TuneSettings(rank=4, alpha=8, epochs=3, batch=1, learning_rate=5e-3, warmup_steps=1)
    out = tmp_path / "a.safetensors"
    report = tune(generator.model, generator.tokenizer, data, data, settings, out, base_sha256="0" * 64)
    assert report.epochs[-1]["eval_loss"] < report.eval_loss_before - 0.1
    assert [e["epoch"] for e in report.epochs] == [1, 2, 3]
    adapter = load_adapter(out, generator.model.args, "0" * 64)
    assert adapter.sha256 == report.adapter_sha256 and adapter.config.rank == 4
    again = _fresh(tmp_path, "n.gguf")
    same = tune(again.model, again.tokenizer, data, data, settings, tmp_path / "b.safetensors", base_sha256="0" * 64)
    assert same.adapter_sha256 == report.adapter_sha256  # one seed, one adapter


def test_a_sequence_longer_than_the_models_context_is_left_out(tmp_path):
    """--max-tokens 5000 over a 256-token model trained a 519-token sequence past its context."""
    generator = _fresh(tmp_path)
    assert generator.model.args.max_seq_len == 256
    long = Example("", "", ({"role": "user", "content": "a b " * 100},), "c d " * 50)
    settings = TuneSettings(rank=2, alpha=4, epochs=1, batch=1, max_tokens=5000)
    report = tune(generator.model, generator.tokenizer, [_line(0), long], [long, _line(1)], settings,
                  tmp_path / "a.safetensors", base_sha256="0" * 64)
    assert report.sequences == 1 and report.left_out == 2
    with pytest.raises(ConfigError, match="no training example fits in the model's context of 256 tokens"):
        tune(generator.model, generator.tokenizer, [long], [], settings, tmp_path / "b.safetensors",
             base_sha256="0" * 64)


def test_held_aside_examples_none_of_which_fit_are_refused(tmp_path):
    """--eval with every example too long trained to the end with no held-aside loss, and not a word."""
    generator = _fresh(tmp_path)
    settings = TuneSettings(rank=2, alpha=4, epochs=1, batch=1, max_tokens=64)
    long = Example("", "", ({"role": "user", "content": "a b " * 40},), "c d")
    with pytest.raises(ConfigError) as error:
        tune(generator.model, generator.tokenizer, [_line(0)], [long], settings, tmp_path / "a.safetensors",
             base_sha256="0" * 64)
    assert error.value.one_line() == ("no held-aside example fits in --max-tokens 64 "
                                      "(raise --max-tokens, or shorten the examples)")
    assert not (tmp_path / "a.safetensors").exists()


def test_a_stopped_run_resumes_to_the_same_adapter(tmp_path):
    data = _story(3) + [_line(i) for i in range(3)]
    settings = TuneSettings(rank=2, alpha=4, epochs=2, batch=1, learning_rate=5e-3, warmup_steps=1)
    whole = _fresh(tmp_path, "a.gguf")
    expected = tune(whole.model, whole.tokenizer, data, [], settings, tmp_path / "whole.safetensors",
                    base_sha256="0" * 64).adapter_sha256

    class Stop(Exception):
        pass

    def stop_in_epoch_two(step, total, loss):
        if step == total // 2 + 1:
            raise Stop

    stopped = _fresh(tmp_path, "b.gguf")
    checkpoint = tmp_path / "out.safetensors.checkpoint"
    with pytest.raises(Stop):
        tune(stopped.model, stopped.tokenizer, data, [], settings, tmp_path / "out.safetensors",
             base_sha256="0" * 64, checkpoint=checkpoint, on_step=stop_in_epoch_two)
    assert checkpoint.exists() and not (tmp_path / "out.safetensors").exists()
    resumed = _fresh(tmp_path, "c.gguf")
    report = tune(resumed.model, resumed.tokenizer, data, [], settings, tmp_path / "out.safetensors",
                  base_sha256="0" * 64, checkpoint=checkpoint, resume=True)
    assert report.adapter_sha256 == expected
    other = _fresh(tmp_path, "d.gguf")
    with pytest.raises(ConfigError, match="made with other settings"):
        tune(other.model, other.tokenizer, data, [], TuneSettings(rank=3, epochs=2, batch=1), tmp_path / "x.safetensors",
             base_sha256="0" * 64, checkpoint=checkpoint, resume=True)


def test_a_run_from_an_adapter_starts_where_that_adapter_ends(tmp_path):
    data = _story(3) + [_line(i) for i in range(4)]
    settings = TuneSettings(rank=4, alpha=8, epochs=2, batch=1, learning_rate=5e-3, warmup_steps=1)
    first = _fresh(tmp_path, "a.gguf")
    made = tune(first.model, first.tokenizer, data, data, settings, tmp_path / "a.safetensors", base_sha256="0" * 64)
    start = load_adapter(tmp_path / "a.safetensors", first.model.args, "0" * 64)
    again = _fresh(tmp_path, "b.gguf")
    more = tune(again.model, again.tokenizer, data, data, settings, tmp_path / "b.safetensors", base_sha256="0" * 64,
                start=start)
    # Its loss before training is the first adapter's after it, not the bare model's.
    assert more.eval_loss_before == pytest.approx(made.epochs[-1]["eval_loss"], abs=1e-4)
    assert more.eval_loss_before < made.eval_loss_before - 0.1
    assert more.epochs[-1]["eval_loss"] < more.eval_loss_before
    other = _fresh(tmp_path, "c.gguf")
    with pytest.raises(ConfigError, match="rank 4, alpha 8"):
        tune(other.model, other.tokenizer, data, [], TuneSettings(rank=2, alpha=8, epochs=1, batch=1),
             tmp_path / "c.safetensors", base_sha256="0" * 64, start=start)
    assert TuneSettings().starting_from(start).adapter == start.config


@pytest.mark.parametrize("field, value", [("rank", 0), ("epochs", 0), ("learning_rate", float("nan")),
                                          ("targets", "heads"), ("dtype", "int4"), ("alpha", 1e30),
                                          ("alpha", float("nan")), ("seed", -1), ("seed", 2**63), ("seed", 10**23)])
def test_impossible_settings_are_refused(field, value):
    with pytest.raises(ConfigError, match="--" + field.replace("_", "-")):
        TuneSettings(**{field: value})


def test_tune_command_writes_an_adapter_that_generation_uses_and_records(runner, tmp_path, wide_gguf, world):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _story(3) + [_line(i) for i in range(3)]))
    out = tmp_path / "a.safetensors"
    result = invoke(runner, "tune", data, "--out", out, "--eval", data, "--model", wide_gguf, "--epochs", 1,
                    "--rank", 2, "--learning-rate", 0.01, "--quiet")
    assert result.exit_code == 0, result.output
    log = json.loads((tmp_path / "a.safetensors.json").read_text())
    assert log["epochs"][0]["eval_loss"] is not None and log["adapter_sha256"]
    again = invoke(runner, "tune", data, "--out", out, "--model", wide_gguf, "--quiet")
    assert again.exit_code != 0 and "exists" in again.output
    fresh = invoke(runner, "tune", data, "--out", tmp_path / "b.safetensors", "--model", wide_gguf, "--epochs", 1,
                   "--rank", 2, "--resume")
    assert fresh.exit_code == 0 and "no checkpoint at " in fresh.stderr and "training from the start" in fresh.stderr
    args = ["generate", "The well", "--model", wide_gguf, "--dtype", "float32", "--seed", 3, "--max-tokens", 12,
            "--json"]
    plain = json.loads(invoke(runner, *args).stdout)
    none = json.loads(invoke(runner, *args, "--adapter", "none").stdout)
    tuned = json.loads(invoke(runner, *args, "--adapter", out).stdout)
    assert plain["text"] == none["text"] and "adapter" not in plain["model"]
    assert tuned["model"]["adapter"]["sha256"] == log["adapter_sha256"]
    story = invoke(runner, "story", world, "--characters", "ada", "--model", wide_gguf, "--dtype", "float32",
                   "--adapter", out, "--seed", 2, "--out", tmp_path / "out")
    assert story.exit_code == 0, story.output
    piece = next((tmp_path / "out").rglob("*.md"))
    assert "sha256" in piece.read_text() and log["adapter_sha256"] in piece.read_text()
    replayed = invoke(runner, "replay", piece)
    assert replayed.exit_code == 0 and "identical" in replayed.output
    bad = invoke(runner, "generate", "x", "--model", wide_gguf, "--adapter", tmp_path / "d.jsonl")
    assert bad.exit_code == 2 and "not a metagen adapter" in bad.output


def test_tune_command_goes_on_from_an_adapter_and_refuses_what_does_not_fit(runner, tmp_path, wide_gguf):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _story(3) + [_line(i) for i in range(3)]))
    first = tmp_path / "a.safetensors"
    common = ["--model", wide_gguf, "--epochs", 1, "--batch", 1, "--quiet"]
    assert invoke(runner, "tune", data, "--out", first, "--rank", 2, "--alpha", 4, *common).exit_code == 0
    more = tmp_path / "b.safetensors"
    result = invoke(runner, "tune", data, "--out", more, "--from", first, "--eval", data, *common)
    assert result.exit_code == 0, result.output
    log = json.loads((tmp_path / "b.safetensors.json").read_text())
    assert log["settings"]["rank"] == 2 and log["settings"]["alpha"] == 4
    assert log["from"]["sha256"] == json.loads((tmp_path / "a.safetensors.json").read_text())["adapter_sha256"]
    for flags, message in ((["--from", first, "--rank", 8], "--rank 8: the adapter --from names has rank 2"),
                           (["--from", "default"], "ships no adapter"),
                           (["--from", "none"], "leave --from out"),
                           (["--from", ""], "'--from': is empty (leave the option out"),  # was a new adapter
                           (["--from", data], "not a metagen adapter"),
                           (["--from", tmp_path / "missing.safetensors"], "no such file")):
        out = tmp_path / "x.safetensors"
        bad = invoke(runner, "tune", data, "--out", out, *flags, *common)
        assert bad.exit_code == 2 and message in bad.output, (flags, bad.output)
        assert "--adapter" not in bad.output  # (the hints named the generating commands' flag)
        assert not out.exists()


def test_a_damaged_checkpoint_is_named_in_words_not_an_exception_class(runner, tmp_path, wide_gguf):
    """--resume over a damaged OUT.checkpoint said '(UnpicklingError)', torch's class name."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _story(3) + [_line(i) for i in range(3)]))
    out = tmp_path / "a.safetensors"
    checkpoint = tmp_path / "a.safetensors.checkpoint"
    checkpoint.write_bytes(b"not a checkpoint" * 10)
    result = invoke(runner, "tune", data, "--out", out, "--resume", "--model", wide_gguf, "--epochs", 1, "--rank", 2,
                    "--quiet")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {checkpoint}: not a checkpoint `metagen tune` wrote, or a damaged one "
                             "(delete it to start again)\n")
    assert not out.exists()


def test_an_out_that_is_a_dangling_link_is_an_existing_name(runner, tmp_path):
    """--out LINK to nowhere: os.path.exists said no, and the link was replaced without --force."""
    out = tmp_path / "a.safetensors"
    out.symlink_to(tmp_path / "nowhere.safetensors")
    result = invoke(runner, "tune", tmp_path / "d.jsonl", "--out", out, "--model", "never-loaded.gguf")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {out} exists as a dangling symbolic link (to {tmp_path / 'nowhere.safetensors'}, "
                             "which does not exist) (give another --out, or --force to overwrite it)\n")
    assert out.is_symlink()


@pytest.mark.parametrize("force", [False, True])
def test_an_existing_log_beside_out_is_refused_before_training_unless_forced(runner, tmp_path, monkeypatch, force):
    """OUT.json, the adapter's log, was written over after training even without --force, where OUT
    itself is refused before the model loads."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    loaded = []
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: loaded.append(1) or sys.exit(9))
    out, log = tmp_path / "a.safetensors", tmp_path / "a.safetensors.json"
    log.write_text("{}\n")
    result = invoke(runner, "tune", data, "--out", out, "--quiet", *(["--force"] if force else []))
    if force:  # past every check of OUT: the model is loaded next
        assert loaded and result.exit_code == 9, result.output
    else:
        assert not loaded
        assert result.exit_code == 2, result.output
        assert result.stderr == f"error: {log} exists (give another --out, or --force to overwrite it)\n"
    assert log.read_text() == "{}\n" and not out.exists()


def test_an_out_that_is_a_link_to_itself_says_so(runner, tmp_path):
    """--out a link to itself was 'a dangling symbolic link (to a.safetensors, which does not exist)'."""
    out = tmp_path / "a.safetensors"
    out.symlink_to(out.name)
    result = invoke(runner, "tune", tmp_path / "d.jsonl", "--out", out, "--model", "never-loaded.gguf")
    assert result.exit_code == 2
    assert result.stderr == (f"error: {out} exists as a symbolic link in a loop (it leads back to itself) (give "
                             "another --out, or --force to overwrite it)\n")


def test_an_out_that_cannot_be_written_is_refused_before_training(runner, tmp_path, wide_gguf):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    (tmp_path / "folder.safetensors").mkdir()
    for out, message in ((tmp_path / "folder.safetensors", "is a folder"),
                         (tmp_path / "none" / "a.safetensors", "does not exist")):
        for force in ([], ["--force"]):
            bad = invoke(runner, "tune", data, "--out", out, "--model", wide_gguf, "--quiet", *force)
            assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "folder.safetensors"]


def test_a_folder_where_the_log_or_checkpoint_goes_is_refused_before_training(runner, tmp_path, monkeypatch):
    """A folder at OUT.json: the run trained to the end, wrote OUT, then failed on the log, exit 1."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "a.safetensors"
    for name, kind in (("a.safetensors.json", "json"), ("a.safetensors.checkpoint", "checkpoint")):
        (tmp_path / name).mkdir()
        bad = invoke(runner, "tune", data, "--out", out, "--quiet", "--resume")
        assert bad.exit_code == 2, bad.output
        assert bad.stderr == (f"error: {tmp_path / name} is a folder where --out's {kind} goes "
                              "(move the folder away, or give another --out)\n")
        (tmp_path / name).rmdir()
    assert not out.exists()


def test_an_out_in_a_folder_it_may_not_search_is_one_line(runner, tmp_path, monkeypatch):
    """--out in a folder without search permission (drw-rw-rw-): Path.is_dir raised PermissionError,
    a traceback with exit 1."""
    from conftest import deny_access

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / "shut" / "a.safetensors"
    deny_access(monkeypatch, "stat", out)
    bad = invoke(runner, "tune", data, "--out", out, "--quiet")
    assert bad.exit_code == 1, bad.output
    assert bad.stderr == f"error: cannot write to output folder {out.parent}: Permission denied\n"


def test_an_out_name_too_long_for_the_system_is_bad_input_shown_cut(runner, tmp_path, monkeypatch):
    """--out with a 300-character name said "cannot write to output folder .: File name too long", exit 1:
    the folder was not at fault, and the name was never the disk's failure."""
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    out = tmp_path / ("x" * 300 + ".safetensors")
    bad = invoke(runner, "tune", data, "--out", out, "--quiet")
    assert bad.exit_code == 2, bad.output
    assert bad.stderr == (f"error: --out {str(out)[:57]}... ({len(str(out)):,} characters): File name too long "
                          "(choose a shorter --out)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_out_folder_that_refuses_files_is_exit_1_like_every_commands(runner, tmp_path, monkeypatch):
    # /proc passes os.access(W_OK) for root, yet no file can be made in it: only making one tells.
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps(_line(0).to_dict()) + "\n")
    monkeypatch.setattr("metagen.generator.load_model", lambda *a, **k: pytest.fail("the model was loaded"))
    bad = invoke(runner, "tune", data, "--out", "/proc/a.safetensors", "--quiet")
    assert bad.exit_code == 1, bad.output
    (line,) = bad.stderr.splitlines()
    assert line.startswith("error: cannot write to output folder /proc: "), line


def test_off_a_terminal_the_command_reports_steps_in_plain_lines(runner, tmp_path, wide_gguf, monkeypatch):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in [_line(i) for i in range(3)]))
    result = invoke(runner, "tune", data, "--out", tmp_path / "a.safetensors", "--model", wide_gguf, "--epochs", 1,
                    "--rank", 2, "--batch", 1)
    assert result.exit_code == 0, result.output
    assert "metagen: tune step 3/3, loss " in result.stderr  # the last step, always
    assert "epoch 1: training loss " in result.stderr
    quiet = invoke(runner, "tune", data, "--out", tmp_path / "b.safetensors", "--model", wide_gguf, "--epochs", 2,
                   "--rank", 2, "--batch", 1, "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == "", quiet.stderr  # the epochs' lines too, one an epoch


def test_examples_left_out_as_too_long_are_reported(runner, tmp_path, wide_gguf):
    """--max-tokens: 'Longer sequences are left out (reported)', and only the .json log said so."""
    data = tmp_path / "d.jsonl"
    long = {"prompt": "a b " * 40, "completion": "c d"}
    data.write_text("".join(json.dumps(row) + "\n" for row in [_line(0).to_dict(), long, long]))
    result = invoke(runner, "tune", data, "--out", tmp_path / "a.safetensors", "--model", wide_gguf, "--epochs", 1,
                    "--rank", 2, "--max-tokens", 64, "--quiet")
    assert result.exit_code == 0, result.output
    assert "; 2 examples left out as too long; log " in result.stdout


def test_step_lines_come_every_ten_steps_with_the_time_left_at_this_runs_pace(monkeypatch, capsys):
    from metagen.commands.tune import _StepLines

    clock = iter([100.0, 190.0, 280.0, 300.0])
    monkeypatch.setattr("metagen.commands.tune.time.monotonic", lambda: next(clock))
    lines = _StepLines()
    for step in (51, 60, 70, 75):  # resumed at step 50: 9 steps in 90 s, then 10 s a step
        lines.step(step, 75, 2.5)
    assert capsys.readouterr().err.splitlines() == ["metagen: tune step 60/75, loss 2.500, about 2 min left",
                                                    "metagen: tune step 70/75, loss 2.500, about 1 min left",
                                                    "metagen: tune step 75/75, loss 2.500"]


@pytest.mark.parametrize("patched", ["torch.save", "metagen.converted.save_aligned_safetensors"])
def test_ctrl_c_while_a_checkpoint_or_the_adapter_is_written_leaves_no_part_file(runner, tmp_path, wide_gguf,
                                                                                  monkeypatch, patched):
    """Ctrl-C during the last save left OUT.checkpoint.part or OUT.part (16-48 MB for the default model)."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _story(3) + [_line(i) for i in range(3)]))

    module, name = patched.rsplit(".", 1)
    save = getattr(__import__(module, fromlist=[name]), name)

    def half_written(tensors_or_state, path, *args, **kwargs):
        if Path(path).parent != tmp_path:  # the model's converted copy, in the cache
            return save(tensors_or_state, path, *args, **kwargs)
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(patched, half_written)
    result = invoke(runner, "tune", data, "--out", tmp_path / "a.safetensors", "--model", wide_gguf, "--epochs", 1,
                    "--rank", 2, "--quiet")
    assert result.exit_code == 130, result.output
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert not (tmp_path / "a.safetensors").exists()


def test_out_must_end_in_safetensors_in_any_case(runner, tmp_path, wide_gguf):
    """`--out A.SAFETENSORS` was refused for its case; a wrong ending did not say what to give."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(e.to_dict()) + "\n" for e in _story(3) + [_line(i) for i in range(3)]))
    bad = invoke(runner, "tune", data, "--out", tmp_path / "a.bin", "--model", wide_gguf, "--quiet")
    assert bad.exit_code == 2
    assert bad.stderr == (f"error: --out {tmp_path / 'a.bin'}: an adapter file ends in .safetensors "
                          "(e.g. --out a.safetensors)\n")
    out = tmp_path / "A.SAFETENSORS"
    result = invoke(runner, "tune", data, "--out", out, "--model", wide_gguf, "--epochs", 1, "--rank", 2, "--quiet")
    assert result.exit_code == 0 and out.is_file(), result.output


def test_a_line_separator_inside_a_json_string_does_not_split_the_line(tmp_path):
    """A completion holding U+2028 as it is (json.dumps(ensure_ascii=False)) was cut in two there: 'not JSON'."""
    path = tmp_path / "d.jsonl"
    rows = [{"prompt": "Say hi.", "completion": "hi\u2028there\x85now\x0cdone."}, {"prompt": "A", "completion": "b."}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    examples = read_examples(path)
    assert [e.completion for e in examples] == ["hi\u2028there\x85now\x0cdone.", "b."]


def test_a_nul_byte_in_the_examples_is_named(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"prompt": "A", "completion": "b."}\n\x00\x00\n')
    with pytest.raises(ConfigError, match=r"d.jsonl:2: holds a NUL byte: not JSON text"):
        read_examples(path)

