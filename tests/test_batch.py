"""metagen.batch and `metagen batch`: a jobs file planned (test_jobs.py reads it), seeds, precedence, shards,
resuming, interruption."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from metagen import batch
from metagen.errors import ConfigError, OutputExistsError, RequestError
from metagen.jobs import JobsFile, load_jobs
from metagen.output import read_piece_file

from conftest import TINY_WORLD, deny_access, deny_files_in, files_in, interrupt_on_call, invoke, killed_mid_write, write_jobs, write_world

ROOT = Path(__file__).resolve().parent.parent

# conftest's tiny world with a third place and world defaults, for jobs to pick from and override
BATCH_WORLD = TINY_WORLD.replace(
    "  - {id: mill, name: The Mill}\n", "  - {id: mill, name: The Mill}\n  - {id: market, name: The Market}\n"
) + "defaults:\n  all: {temperature: 0.9, top_k: 20}\n"


@pytest.fixture
def world(tmp_path) -> Path:
    return write_world(tmp_path, BATCH_WORLD)


@pytest.fixture
def no_model(monkeypatch):
    monkeypatch.setattr("metagen.commands.batch.load_generator",
                        lambda *a, **k: pytest.fail("the model was loaded"))


MANY_JOBS = """\
world: tiny.yaml
seed: 500
settings: {max_new_tokens: 4}
jobs:
  - {kind: scene, location: well, count: 5}
  - {kind: scene, location: mill, time: dusk, count: 4, settings: {max_new_tokens: 3}}
  - {kind: story, characters: [ada, bo], count: 4}
  - {kind: story, characters: cy, location: market, premise: A lost coin., count: 3, seed: 9000}
  - {kind: scene, location: market, count: 3, format: json}
  - {kind: dialogue, characters: [ada, cy], turns: 2, order: turns}
  - {kind: story, characters: [bo], count: 2, settings: {temperature: 1.2}}
"""  # 22 pieces


def piece_files(out: Path, *, batches: bool = True) -> dict[str, dict]:
    """Every output file (relative path) -> its record without the timing fields (and without the
    scenes decoded beside it, `decoded_with`, unless batches)."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = read_piece_file(path)
        data.pop("seconds"), data.pop("created")
        if not batches:
            data.pop("decoded_with", None)
        files[str(path.relative_to(out))] = data
    return files


# ----------------------------------------------------------------------------- the jobs file, planned


def test_settings_that_need_each_other_are_checked_over_the_whole_stack(tmp_path, world):
    """A file-wide min_new_tokens above the default max_new_tokens is fine when each job gives a larger one."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nsettings: {min_new_tokens: 400}\njobs:\n"
                                "  - {kind: story, settings: {max_new_tokens: 500}}\n")
    assert len(batch.plan_batch(load_jobs(path), out=tmp_path / "o").units) == 1


@pytest.mark.parametrize("top, flags, needle", [
    ("seed: 9223372036854775806\n", [], "jobs.yaml: seed: 9223372036854775806 passes the largest seed, 2**63 - 1, "
                                         "by piece 3 ("),
    ("", ["--seed", "9223372036854775805"], "--seed 9223372036854775805 passes the largest seed"),
])  # fmt: skip
def test_a_given_base_seed_never_wraps_to_0(runner, tmp_path, world, no_model, top, flags, needle):
    """seed: 2**63 - 2 over three pieces wrote seeds 2**63 - 2, 2**63 - 1 and then 0, where a job's own
    seed (and --seed with -n) is refused; the seed made from the file's bytes may still wrap."""
    path = write_jobs(tmp_path, f"world: tiny.yaml\n{top}jobs:\n  - {{kind: scene, location: well, count: 2}}\n"
                                "  - {kind: scene, location: mill, count: 2}\n")
    result = invoke(runner, "batch", path, *flags, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert needle in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    made = JobsFile(**{**vars(load_jobs(path)), "seed": None, "content_hash": "f" * 64})
    assert [u.seed for u in batch.plan_batch(made, out=tmp_path / "o").units] == [2**63 - 1, 0, 1, 2]


def test_an_unknown_format_flag_is_named_as_the_flag(runner, tmp_path, world, no_model):
    """batch --format docx said 'jobs.yaml:3: jobs[0]: unknown output format', blaming the file."""
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs:\n  - {kind: story}\n")
    result = invoke(runner, "batch", path, "--format", "mdd", "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr == "error: --format 'mdd' is not a format (did you mean 'md'?)\n"


@pytest.mark.parametrize("top, job, flag, ext", [
    ("format: Markdown\n", "", None, "md"),
    ("", ", format: JSON", None, "json"),
    ("format: md\n", "", "TXT", "txt"),
    ("", "", "markdown", "md"),
])
def test_format_names_are_taken_in_any_case(tmp_path, world, top, job, flag, ext):
    """A jobs file's `format: Markdown` and `batch --format TXT` were 'not a format'."""
    path = write_jobs(tmp_path, f"world: tiny.yaml\nseed: 1\n{top}jobs: [{{kind: scene, location: well{job}}}]")
    unit = batch.plan_batch(load_jobs(path), out=tmp_path / "o", fmt=flag).units[0]
    assert unit.path == tmp_path / "o" / "tinyville" / "scene" / f"well-1.{ext}"


@pytest.mark.parametrize("top, flags, given", [
    ("", ["--out", "{tmp}/results.md"], "--out {tmp}/results.md"),
    ("out: results.json\n", [], "{tmp}/jobs.yaml: out: {tmp}/results.json"),
])
def test_an_out_that_names_a_file_is_refused(runner, tmp_path, world, no_model, top, flags, given):
    """`batch -o results.md` made a folder named results.md: a batch writes a file a piece."""
    path = write_jobs(tmp_path, f"world: tiny.yaml\n{top}jobs:\n  - {{kind: scene, location: well}}\n")
    result = invoke(runner, "batch", path, *(f.format(tmp=tmp_path) for f in flags))
    given = given.format(tmp=tmp_path)
    folder = given.rsplit(" ", 1)[1].rsplit(".", 1)[0]
    assert result.exit_code == 2 and not list(tmp_path.glob("results*"))
    assert result.stderr == (f"error: {given} names a file, but a batch writes one file a piece into a folder (give a "
                             f"folder, such as {folder}; metagen story, describe-scene and dialogue write a single "
                             "piece to -o FILE)\n")


def test_an_out_ending_in_md_that_is_a_folder_or_ends_in_a_slash_is_a_folder(tmp_path, world):
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well}]")
    (tmp_path / "made.md").mkdir()
    unit = batch.plan_batch(load_jobs(path), out=tmp_path / "made.md").units[0]
    assert unit.path == tmp_path / "made.md" / "tinyville" / "scene" / "well-1.md"
    unit = batch.plan_batch(load_jobs(path), out=tmp_path / "new.md", out_typed=f"{tmp_path}/new.md/").units[0]
    assert unit.path == tmp_path / "new.md" / "tinyville" / "scene" / "well-1.md"


@pytest.mark.parametrize("flags, line", [
    (["--temperature", "-1"], "error: --temperature must be in [0, 100], got -1.0\n"),
    (["--max-tokens", "0"], "error: --max-tokens must be at least 1, got 0\n"),
    # had no upper bound: a batch of 10**18 scenes was taken, and failed only for memory
    (["--batch-size", "257"], "error: --batch-size must be at most 256, got 257 (give 256 or less: each scene brings "
                              "up to 16 candidates as rows of one model call)\n"),
])  # fmt: skip
def test_a_bad_decoding_flag_is_named_as_the_flag(runner, tmp_path, world, no_model, flags, line):
    """batch --temperature -1 said 'jobs.yaml:3: jobs[0]: --temperature must be ...', as if the job held it."""
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs:\n  - {kind: story}\n  - {kind: scene, location: well}\n")
    result = invoke(runner, "batch", path, *flags, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr == line


@pytest.mark.parametrize("seed", ["-1", "9223372036854775808"])
def test_a_seed_flag_out_of_range_is_refused_before_the_model(runner, tmp_path, world, no_model, seed):
    """batch --seed -1 loaded the model and wrote well-9223372036854775807.md: the flag's seed is taken
    out of the settings (it is the base seed) and was never checked, only wrapped modulo 2**63."""
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs:\n  - {kind: scene, location: well}\n")
    result = invoke(runner, "batch", path, "--seed", seed, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr == f"error: --seed must be in [0, 2**63), got {seed}\n"


@pytest.mark.parametrize("text, error, message", [
    ("jobs: [{kind: story, characters: [adda]}]", RequestError, "jobs.yaml:1: jobs[0]: world 'tinyville' has no character 'adda' (did you mean 'ada'?"),
    ("jobs: [{kind: scene}]", RequestError, "jobs[0]: a scene needs a location"),
    ("jobs: [{kind: story, format: yarn}]", ConfigError, "jobs[0]: the yarn format holds dialogue only"),
    ("jobs: [{kind: story, settings: {top_p: 3}}]", ConfigError, "jobs.yaml:1: jobs[0].settings.top_p: --top-p must be in (0, 1]"),
    ("jobs: [{kind: story, world: nope.yaml}]", Exception, "nope.yaml"),
    ("jobs: [{kind: story, seed: 1}, {kind: story, seed: 0, count: 2}]", ConfigError, "would both write"),
])
def test_bad_jobs_stop_before_the_model(runner, tmp_path, world, no_model, text, error, message):
    path = write_jobs(tmp_path, "world: tiny.yaml\n" + text)
    with pytest.raises(error) as raised:
        batch.plan_batch(load_jobs(path), out=tmp_path / "o")
    assert message.replace("jobs.yaml:1", f"{path}:2") in raised.value.one_line()
    result = invoke(runner, "batch", path, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("text, expected", [
    (None, (1, 1)), ("1/1", (1, 1)), ("2/3", (2, 3)), ("3/3", (3, 3)),
])
def test_parse_shard(text, expected):
    assert batch.parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "2", "a/b", "1/2/3", "-1/2", "\u0661/\u0662", " 1/2", "+1/2",
                                  "1/1_0"])
def test_bad_shards(runner, tmp_path, world, no_model, text):
    with pytest.raises(ConfigError, match="--shard"):
        batch.parse_shard(text)
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs: [{kind: story}]")
    result = invoke(runner, "batch", path, f"--shard={text}")
    assert result.exit_code == 2 and "--shard" in result.stderr


@pytest.mark.parametrize("text, message", [
    ("99999999999999999999/99999999999999999999", "--shard I must be below 2**63 (at most 19 digits), "
                                                   "got 99999999999999999999"),
    ("1/99999999999999999999", "--shard N must be below 2**63 (at most 19 digits), got 99999999999999999999"),
    ("1/" + "9" * 5000, "--shard N must be below 2**63 (at most 19 digits), got a number of more than 40 digits"),
    ("0" * 5000 + "1/0", "--shard 1/0: I must be 1 to N and N at least 1, e.g. 1/2"),
])
def test_a_shard_number_from_2_63_up_is_refused_as_every_whole_number_is(runner, tmp_path, world, no_model, text,
                                                                         message):
    """--shard 99999999999999999999/99999999999999999999 said "nothing to do" and exited 0, and 5,000
    digits were a ValueError traceback (int()'s limit), where every other whole-number flag refuses 2**63."""
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs: [{kind: story}]")
    result = invoke(runner, "batch", path, "--shard", text)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {message}\n"


def test_a_shard_in_other_digits_is_refused_naming_the_form(runner, tmp_path, world, no_model):
    """int() takes Unicode digits: --shard ١/٢ (Arabic-Indic) ran as shard 1/2."""
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs: [{kind: story}]")
    result = invoke(runner, "batch", path, "--shard", "\u0661/\u0662")
    assert result.exit_code == 2
    assert result.stderr == "error: --shard must look like I/N in the digits 0-9, e.g. 2/4, got '\u0661/\u0662'\n"


def test_a_jobs_file_on_stdin_is_read_with_paths_from_the_current_folder(runner, tmp_path, world, model_args):
    """`generate_jobs | metagen batch -` said '-: no such jobs file'."""
    from metagen.cli import app

    text = "world: tiny.yaml\nseed: 4\nsettings: {max_new_tokens: 2}\njobs:\n  - {kind: scene, location: well}\n"
    result = runner.invoke(app, ["batch", "-", "--out", "piped", "--json", *model_args], input=text)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == "piped/tinyville/scene/well-4.md"
    assert invoke(runner, "batch", write_jobs(tmp_path, text), "--out", "filed", "-q", *model_args).exit_code == 0
    assert piece_files(tmp_path / "piped") == piece_files(tmp_path / "filed")
    result = runner.invoke(app, ["batch", "-"], input="")  # the command piping it in wrote nothing
    assert result.exit_code == 2 and result.stderr.startswith("error: <stdin>: standard input held nothing but blanks")
    result = runner.invoke(app, ["batch", "-"], input="jobs:\n  - {kind: scene, location: well}\n")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: <stdin>:2: jobs[0].world: no world") and "Traceback" not in result.output


def test_a_jobs_file_named_dash_is_read_when_given_as_a_path(runner, tmp_path, world, no_model):
    """`metagen batch ./-` read standard input, as `-` does: pathlib folds './-' to '-'."""
    from metagen.cli import app

    (tmp_path / "-").write_text("world: tiny.yaml\njobs: []\n", encoding="utf-8")  # tmp_path is the current folder
    result = runner.invoke(app, ["batch", "./-"], input="jobs: [{kind: story}]\n")
    assert result.exit_code == 2
    assert result.stderr == f"error: {tmp_path / '-'}:2: jobs: must be a non-empty list of jobs\n"


def test_examples_and_docs_load(tmp_path):
    plan = batch.plan_batch(load_jobs(ROOT / "examples" / "jobs.yaml"), out=tmp_path / "o")
    assert plan.total == len(plan.units) == 7
    block = re.search(r"```yaml\n(.*?)```", (ROOT / "docs" / "batch.md").read_text(), re.S).group(1)
    (tmp_path / "docs").mkdir()
    path = write_jobs(tmp_path / "docs", block.replace("../worlds/", f"{ROOT}/worlds/"))
    plan = batch.plan_batch(load_jobs(path), out=tmp_path / "o")
    assert [u.seed for u in plan.units] == [2024, 2025, 2026, 2027, 7, 8]
    assert plan.units[3].path.suffix == ".yarn" and plan.units[4].cfg.max_new_tokens == 240


# ----------------------------------------------------------------------------- seeds and settings


def test_seeds(tmp_path, world):
    text = "world: tiny.yaml\njobs:\n  - {kind: scene, location: well, count: 2}\n  - {kind: story, seed: 40, count: 2}\n  - {kind: scene, location: mill}\n"
    path = write_jobs(tmp_path, "seed: 100\n" + text)
    assert [u.seed for u in batch.plan_batch(load_jobs(path)).units] == [100, 101, 40, 41, 104]
    assert [u.seed for u in batch.plan_batch(load_jobs(path), cli_settings={"seed": 7}).units] == [7, 8, 40, 41, 11]
    hashed = write_jobs(tmp_path, text, "hashed.yaml")
    first = [u.seed for u in batch.plan_batch(load_jobs(hashed)).units]
    assert first == [u.seed for u in batch.plan_batch(load_jobs(hashed)).units]  # stable
    assert first[1] == first[0] + 1 and first[4] == first[0] + 4
    hashed.write_text(text + "# a comment\n")
    assert [u.seed for u in batch.plan_batch(load_jobs(hashed)).units][0] != first[0]


def test_precedence(tmp_path, world):
    path = write_jobs(tmp_path, """\
world: tiny.yaml
settings: {temperature: 0.5, top_p: 0.5, min_p: 0.05}
jobs:
  - {kind: story, settings: {top_p: 0.6, max_new_tokens: 9}}
  - {kind: scene, location: well}
""")
    jobs = load_jobs(path)
    first, second = batch.plan_batch(jobs).units
    assert (first.cfg.temperature, first.cfg.top_p, first.cfg.top_k, first.cfg.max_new_tokens) == (0.5, 0.6, 20, 9)
    assert (second.cfg.top_p, second.cfg.max_new_tokens) == (0.5, 200)
    flags = {"top_p": 0.9, "min_p": None, "max_new_tokens": 3}
    first, second = batch.plan_batch(jobs, cli_settings=flags).units
    assert (first.cfg.top_p, first.cfg.min_p, first.cfg.max_new_tokens) == (0.9, 0.05, 3)
    assert (second.cfg.top_p, second.cfg.max_new_tokens) == (0.9, 3)


def test_planning_reads_a_worlds_prose_once_not_once_a_job(tmp_path, world, monkeypatch):
    """Every job's settings tallied the scripts of its world's whole prose again: 500 jobs on
    nexus-hub took 5.8 s to plan, in every shard, before the model loaded (now 1.4 s)."""
    from metagen import scripts

    real, letters = scripts.script_of, []
    monkeypatch.setattr(scripts, "script_of", lambda char: letters.append(char) or real(char))

    def letters_read(jobs: int) -> int:
        letters.clear()
        path = write_jobs(tmp_path, "world: tiny.yaml\njobs:\n" + "".join(
            f"  - {{kind: scene, location: well, time: hour {i}}}\n" for i in range(jobs)))
        assert len(batch.plan_batch(load_jobs(path), out=tmp_path / "o").units) == jobs
        return len(letters)

    write_world(tmp_path, BATCH_WORLD.replace("The well flooded once.", "The well flooded once. " * 200))
    one = letters_read(1)  # about 3,500 letters of lore, and the names and request
    assert letters_read(40) < 2 * one


def test_groups(tmp_path, world):
    path = write_jobs(tmp_path, MANY_JOBS)
    units = batch.plan_batch(load_jobs(path)).units
    groups = batch.settings_groups(units)
    assert sorted(u.index for g in groups for u in g) == list(range(22))
    for group in groups:
        assert len({(u.job.world, u.job.kind, u.cfg.max_new_tokens, u.cfg.temperature, u.job.order)
                    for u in group}) == 1
        assert [u.index for u in group] == sorted(u.index for u in group)
    # the two story jobs without their own settings share a group; the job at temperature 1.2 does not;
    # the well and market scenes share theirs (compose splits a group into batches)
    sizes = [[u.job.index for u in g] for g in groups]
    assert sizes == [[0] * 5 + [4] * 3, [1] * 4, [2] * 4 + [3] * 3, [5], [6] * 2]


# ----------------------------------------------------------------------------- runs


def test_shards_write_exactly_what_one_run_writes(runner, tmp_path, world, model_args):
    path = write_jobs(tmp_path, MANY_JOBS)
    whole = invoke(runner, "batch", path, "--out", tmp_path / "whole", "--batch-size", 4, *model_args)
    assert whole.exit_code == 0, whole.output
    assert whole.stderr.count("wrote ") == 22
    # without --resume nothing is skipped, and the summary does not say "skipped 0 (resume)"
    assert re.search(r"^written 22, \d+ tokens, [\d.]+ seconds", whole.stderr, re.M), whole.stderr
    assert "skipped" not in whole.stderr and "resume" not in whole.stderr
    for i in (1, 2, 3):
        result = invoke(runner, "batch", path, "--shard", f"{i}/3", "--out", tmp_path / "sharded", "--batch-size", 3,
                        "--json", *model_args)
        assert result.exit_code == 0, result.output
        lines = [json.loads(line) for line in result.stdout.splitlines()]
        assert len(lines) in (7, 8) and f"(shard {i}/3)" in result.stderr
    # the same texts and records; which scenes were decoded together depends on the shard and
    # --batch-size, and each scene records its batch for replay
    expected = piece_files(tmp_path / "whole", batches=False)
    assert len(expected) == 22
    assert piece_files(tmp_path / "sharded", batches=False) == expected
    names = sorted(expected)
    assert "tinyville/scene/well-500.md" in names and "tinyville/story/cy-at-market-9002.md" in names
    assert "tinyville/scene/market-516.json" in names and "tinyville/dialogue/ada-cy-519.md" in names


def test_a_shard_with_no_pieces_says_so(runner, tmp_path, world, model_args, monkeypatch):
    """Round 37: shard 3/3 of a 2-piece file said "nothing to do (shard 3/3): 0 complete already",
    as if --resume had found finished files; it has no pieces at all."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\nsettings: {max_new_tokens: 3}\njobs:\n"
                                "  - {kind: scene, location: well, count: 2}\n")
    monkeypatch.setattr("metagen.commands.batch.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, "batch", path, "--shard", "3/3", *model_args)
    assert result.exit_code == 0, result.output
    assert result.stderr == "nothing to do (shard 3/3): no piece falls to this shard, 2 in the file\n"


def test_a_full_disk_says_resume_finishes_the_batch(runner, tmp_path, world, model_args, monkeypatch):
    """Round 37: an interrupted batch says "rerun with --resume to finish"; one stopped by a full
    disk (exit 1) said only "cannot write ...: No space left on device"."""
    import errno

    import metagen.output.writing as writing

    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 40\nsettings: {max_new_tokens: 3}\n"
                                "jobs:\n  - {kind: story, characters: [ada], location: well, count: 4}\n")
    real, calls = writing._write_all, []

    def full_on_the_third(fd, data):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd, data)

    monkeypatch.setattr(writing, "_write_all", full_on_the_third)
    result = invoke(runner, "batch", path, "--batch-size", 1, "-q", *model_args)
    assert result.exit_code == 1, result.output
    target = Path("out") / "tinyville" / "story" / "ada-at-well-42.md"
    assert result.stderr == (f"error: cannot write {target}: No space left on device "
                             "(2 of 4 written; rerun with --resume to finish)\n")


def test_existing_outputs_stop_the_run_before_the_model(runner, tmp_path, world, model_args, monkeypatch):
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\nsettings: {max_new_tokens: 3}\njobs:\n"
                                "  - {kind: scene, location: well, count: 2}\n")
    assert invoke(runner, "batch", path, "-q", *model_args).exit_code == 0
    monkeypatch.setattr("metagen.commands.batch.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, "batch", path, *model_args)
    assert result.exit_code == 2 and "out/tinyville/scene/well-1.md exists" in result.stderr
    result = invoke(runner, "batch", path, "--resume", *model_args)
    assert result.exit_code == 0 and "nothing to do: 2 complete already" in result.stderr
    (tmp_path / "out" / "tinyville" / "scene" / "well-2.md").write_text("half a piece")
    result = invoke(runner, "batch", path, "--resume", *model_args)
    assert result.exit_code == 2 and "is not a complete metagen piece" in result.stderr


@pytest.mark.parametrize("top, second, flags, message", [
    ("", ", settings: {max_new_tokens: 1024}", [],
     "jobs.yaml:5: jobs[1].settings.max_new_tokens: 1024 does not fit the model's context of 1024 tokens"),
    ("settings: {max_new_tokens: 2000}\n", "", [],
     "jobs.yaml:6: jobs[1]: max_new_tokens 2000 (from the file's settings:) does not fit the model's context"),
    ("", "", ["--max-tokens", 5000], "error: --max-tokens 5000 does not fit the model's context of 1024 tokens"),
    # under the window alone, but not with the job's prompt: found before the first job's piece too
    ("", ", settings: {max_new_tokens: 800}", [], "jobs.yaml:5: jobs[1]: the prompt needs about"),
    ("", ", settings: {max_new_tokens: 1000}", [], "jobs.yaml:5: jobs[1]: 1000 tokens kept for the text leave no room"),
])
def test_max_tokens_past_the_context_stop_the_run_before_any_piece(runner, tmp_path, world, model_args, top, second,
                                                                    flags, message):
    # The first job fits; the second's budget alone fills the model's 1024-token window.
    path = write_jobs(tmp_path, f"world: tiny.yaml\nseed: 1\n{top}jobs:\n"
                                "  - {kind: scene, location: well, settings: {max_new_tokens: 3}}\n"
                                f"  - {{kind: scene, location: mill{second}}}\n")
    result = invoke(runner, "batch", path, "--out", tmp_path / "o", "-q", *model_args, *flags)
    assert result.exit_code == 2 and message.replace("jobs.yaml", str(path)) in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("job, message", [
    # a story's budget is shared among its beats (at most 120 tokens each): a long premise is what overflows
    (f"{{kind: story, characters: [ada], premise: '{'The well sings. ' * 120}'}}",
     "jobs.yaml:5: jobs[1]: the story's plan needs about"),
    ("{kind: dialogue, characters: [ada, bo], turns: 2, settings: {max_new_tokens: 800}}",
     "jobs.yaml:5: jobs[1]: the prompt needs about"),
    # 1000 and the speakers' names fill the 1024-token context: there is no 'only 0 fit' to say
    ("{kind: dialogue, characters: [ada, bo], turns: 2, settings: {max_new_tokens: 1000}}",
     "jobs.yaml:5: jobs[1]: 1005 tokens kept for the text leave no room for the prompt in the model's context of "
     "1024 tokens"),
])
def test_a_prompt_past_the_context_stops_the_run_before_any_piece(runner, tmp_path, world, model_args, job, message):
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs:\n"
                                "  - {kind: scene, location: well, settings: {max_new_tokens: 3}}\n"
                                f"  - {job}\n")
    result = invoke(runner, "batch", path, "--out", tmp_path / "o", "-q", *model_args)
    assert result.exit_code == 2 and message.replace("jobs.yaml", str(path)) in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_interrupted_run_resumes_and_loses_nothing(runner, tmp_path, world, model_args, monkeypatch):
    from metagen.generator import Generator

    path = write_jobs(tmp_path, MANY_JOBS)
    real = interrupt_on_call(monkeypatch, Generator, "complete", 3)  # the third batch of two scenes
    out = tmp_path / "o"
    result = invoke(runner, "batch", path, "--out", out, "--batch-size", 2, *model_args)
    assert result.exit_code == 130
    assert "interrupted after 4 of 22; rerun with --resume to finish" in result.stderr
    first = piece_files(out)
    assert len(first) == 4
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    monkeypatch.setattr(Generator, "complete", real)
    result = invoke(runner, "batch", path, "--out", out, "--batch-size", 2, "--resume", *model_args)
    assert result.exit_code == 0, result.output
    assert "written 18, skipped 4 (resume)" in result.stderr
    finished = piece_files(out)
    assert {k: finished[k] for k in first} == first
    assert invoke(runner, "batch", path, "--out", tmp_path / "clean", "-q", *model_args).exit_code == 0
    assert piece_files(out, batches=False) == piece_files(tmp_path / "clean", batches=False)  # (--batch-size 8)


def test_a_second_resumed_run_skips_what_the_first_finished_meanwhile(runner, tmp_path, world, model_args,
                                                                      monkeypatch):
    """Two `--resume` runs on one folder (a retried job whose first try still runs): the later one
    stopped with exit 2 at the first piece the other had written, and said to pass --overwrite."""
    from metagen.commands import batch as command

    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\nsettings: {max_new_tokens: 3}\njobs:\n"
                                "  - {kind: scene, location: well, count: 2}\n  - {kind: story, characters: [ada]}\n")
    real = command.load_generator

    def the_other_run_finishes_first(*args, **kwargs):  # while this run loads its model
        generator = real(*args, **kwargs)
        other = batch.plan_batch(load_jobs(path), out=tmp_path / "out", resume=True)
        assert batch.run_batch(generator, other).written == 3
        return generator

    monkeypatch.setattr(command, "load_generator", the_other_run_finishes_first)
    result = invoke(runner, "batch", path, "--resume", *model_args)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("(another run finished it meanwhile)") == 3
    assert "written 0, skipped 3 (resume)" in result.stderr
    # a file that is no finished piece, made meanwhile, still stops the run
    scene = tmp_path / "out" / "tinyville" / "scene" / "well-1.md"
    scene.unlink()

    def half_a_piece_appears(*args, **kwargs):
        scene.write_text("half a piece")
        return real(*args, **kwargs)

    monkeypatch.setattr(command, "load_generator", half_a_piece_appears)
    result = invoke(runner, "batch", path, "--resume", *model_args)
    assert result.exit_code == 2 and "well-1.md exists" in result.stderr and scene.read_text() == "half a piece"


def test_the_temp_file_of_a_run_killed_outright_is_removed_by_the_next(tmp_path, world):
    """kill -9 between a piece's first byte and its rename left `.well-1.md....tmp` for good: a
    script that counts the files under --out counted it, and --resume never removed it."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs:\n  - {kind: scene, location: well, count: 2}\n")
    piece = batch.plan_batch(load_jobs(path), out=tmp_path / "out").units[0].path
    piece.parent.mkdir(parents=True)
    killed_mid_write(piece)
    (left,) = [p.name for p in piece.parent.iterdir()]
    assert left.startswith(".well-1.md.") and left.endswith(".tmp")
    (piece.parent / ".well-1.md.note.tmp").write_text("not metagen's")  # another tool's file stays
    plan = batch.plan_batch(load_jobs(path), out=tmp_path / "out", resume=True)
    assert len(plan.units) == 2 and [p.name for p in piece.parent.iterdir()] == [".well-1.md.note.tmp"]


def test_overwrite_and_flags_override_jobs(runner, tmp_path, world, model_args):
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 3\njobs:\n  - {kind: story, characters: [ada], location: well, settings: {max_new_tokens: 9}}\n")
    assert invoke(runner, "batch", path, "-q", *model_args).exit_code == 0
    result = invoke(runner, "batch", path, "--overwrite", "--max-tokens", 2, "--format", "json", "--json", *model_args)
    assert result.exit_code == 0, result.output
    line = json.loads(result.stdout)
    assert line["path"].endswith("out/tinyville/story/ada-at-well-3.json") and line["job"] == "job-1"
    data = read_piece_file(line["path"])
    assert data["settings"]["max_new_tokens"] == 2 and data["output_tokens"] <= 2
    assert "wrote" not in result.stderr  # --json: the lines on stdout say it


def test_quiet_prints_nothing(runner, tmp_path, world, model_args):
    path = write_jobs(tmp_path, "world: tiny.yaml\njobs:\n  - {kind: scene, location: mill, settings: {max_new_tokens: 2}}\n")
    result = invoke(runner, "batch", path, "--quiet", *model_args)
    assert result.exit_code == 0 and result.stdout == "" and result.stderr == ""
    assert len(list((tmp_path / "out").rglob("*.md"))) == 1


def test_out_in_the_file_is_relative_to_it(tmp_path, world):
    (tmp_path / "jobs").mkdir()
    path = write_jobs(tmp_path / "jobs", "world: ../tiny.yaml\nout: ../made\nseed: 1\njobs: [{kind: scene, location: well}]")
    unit = batch.plan_batch(load_jobs(path)).units[0]
    assert unit.path == tmp_path / "jobs" / ".." / "made" / "tinyville" / "scene" / "well-1.md"
    assert batch.plan_batch(load_jobs(path), out="elsewhere").units[0].path.parts[0] == "elsewhere"


def test_resume_skips_only_complete_files(tmp_path, world):
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well, count: 3}]")
    jobs = load_jobs(path)
    folder = tmp_path / "out" / "tinyville" / "scene"
    folder.mkdir(parents=True)
    (folder / "well-1.md").write_text("---\nkind: scene\nworld_id: tinyville\nseed: 1\nmetagen_version: x\n"
                                      "finish_reason: eos\nrequest: {kind: scene, location: well, time: null, "
                                      "weather: null, mood: null, characters: [], opening: false, start: null}"
                                      "\n---\n\nDone.\n")
    plan = batch.plan_batch(jobs, resume=True)
    assert [u.seed for u in plan.skipped] == [1] and [u.seed for u in plan.units] == [2, 3]
    with pytest.raises(OutputExistsError):
        batch.plan_batch(jobs)
    assert [u.seed for u in batch.plan_batch(jobs, overwrite=True).units] == [1, 2, 3]


@pytest.mark.parametrize("call", ["stat", "open"])
@pytest.mark.parametrize("flags", [["--resume"], ["--resume", "--overwrite"]])
def test_resume_over_a_piece_it_cannot_read_names_it(runner, tmp_path, world, no_model, monkeypatch, call, flags):
    """A piece in a folder this user may not search (stat: EACCES) was a traceback from Path.is_file;
    one it may not read was "exists but is not a complete metagen piece (pass --overwrite to replace
    it)", and with --overwrite it was replaced, though it may be finished. Now one line, exit 2."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well}]")
    piece = tmp_path / "o" / "tinyville" / "scene" / "well-1.md"
    piece.parent.mkdir(parents=True)
    piece.write_text("---\nkind: scene\n---\n\nDone.\n")
    deny_access(monkeypatch, call, piece)
    result = invoke(runner, "batch", path, "--out", tmp_path / "o", *flags)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: cannot read {piece}: Permission denied (--resume reads each piece to tell "
                             "whether it is finished: let this user read it and search its folders, or move it "
                             "away)\n")
    assert piece.read_text() == "---\nkind: scene\n---\n\nDone.\n"


def test_resume_over_a_link_to_nothing_names_it(runner, tmp_path, world, no_model):
    """A piece's name that is a link to nothing is no complete piece, as `replay` of it says: --resume
    named it only "exists but is not a complete metagen piece"; --overwrite replaces the link."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well}]")
    piece = tmp_path / "o" / "tinyville" / "scene" / "well-1.md"
    piece.parent.mkdir(parents=True)
    piece.symlink_to("nothere.md")
    result = invoke(runner, "batch", path, "--out", tmp_path / "o", "--resume")
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {piece} exists as a dangling symbolic link (to nothere.md, which does not "
                             "exist) but is not a complete metagen piece (pass --overwrite to replace it)\n")
    assert not batch.plan_batch(load_jobs(path), out=tmp_path / "o", resume=True, overwrite=True).skipped


def test_a_piece_folder_it_cannot_write_is_refused_before_the_model_loads(runner, tmp_path, world, no_model,
                                                                         monkeypatch):
    """OUT/<world>/scene made by another user: only OUT was probed, so the model loaded and the first
    pieces were made before 'cannot write ...: Permission denied (0 of 2 written; rerun with --resume
    to finish)', which a rerun could not do either."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 1\njobs: [{kind: scene, location: well, count: 2},"
                                " {kind: story, characters: [ada]}]")
    folder = tmp_path / "o" / "tinyville" / "scene"
    folder.mkdir(parents=True)
    deny_files_in(monkeypatch, folder)
    result = invoke(runner, "batch", path, "--out", tmp_path / "o")
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: cannot write to output folder {folder}: Permission denied\n"
    assert files_in(tmp_path / "o") == [] and not (tmp_path / "o" / "tinyville" / "story").exists()


def test_resume_skips_pieces_whose_topic_and_start_the_seed_drew(runner, tmp_path, model_args):
    """A dialogue's topic, drawn by the seed, is recorded in the request, and a scene's first words,
    drawn per candidate, with the critic's scores: --resume compares the request as recorded, so a
    finished batch is skipped, not refused."""
    (tmp_path / "goals.yaml").write_text(
        "world: {id: goals, name: Goals}\nlocations:\n  - {id: well, name: The Well, sounds: [a bucket chain]}\n"
        "characters:\n  - {id: ada, name: Ada, goals: [find the key]}\n  - {id: bo, name: Bo}\n")
    path = write_jobs(tmp_path, "world: goals.yaml\nseed: 1\nsettings: {max_new_tokens: 3}\njobs:\n"
                                "  - {kind: scene, location: well}\n  - {kind: dialogue, characters: [ada, bo], turns: 2}\n")
    assert invoke(runner, "batch", path, "-q", *model_args).exit_code == 0
    scene = read_piece_file(tmp_path / "out" / "goals" / "scene" / "well-1.md")
    assert scene["request"]["start"] is None
    assert {c["start"] for c in scene["critic"]["candidates"]} == {"The Well rings with"}  # its one sense
    result = invoke(runner, "batch", path, "--resume", *model_args)
    assert result.exit_code == 0 and "nothing to do: 2 complete already" in result.stderr, result.output


@pytest.mark.parametrize("flags", [["--resume"], ["--resume", "--overwrite"], ["--overwrite"], []])
def test_a_folder_where_a_piece_goes_is_refused_before_the_model_loads(runner, tmp_path, world, model_args, flags,
                                                                      monkeypatch):
    """--resume said 'pass --overwrite to replace it', and --overwrite then failed 'it is a folder'."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 3\njobs: [{kind: scene, location: well}]")
    (tmp_path / "o" / "tinyville" / "scene" / "well-3.md").mkdir(parents=True)
    monkeypatch.setattr("metagen.commands.batch.load_generator", lambda *a, **k: pytest.fail("model loaded"))
    result = invoke(runner, "batch", path, "--out", tmp_path / "o", *flags, *model_args)
    assert result.exit_code == 2, result.output
    assert result.stderr == (f"error: {tmp_path / 'o' / 'tinyville' / 'scene' / 'well-3.md'} is a folder where a "
                             "piece goes (move the folder away, or choose another --out)\n")


def test_resume_refuses_pieces_made_with_other_settings(runner, tmp_path, world, model_args):
    """--resume with --max-tokens 5 or --temperature 1.3 over a run made at 4 and the defaults said
    "nothing to do": the files were not what the run asked for. Now refused, naming the setting."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nseed: 3\njobs: [{kind: scene, location: well, count: 2}]")
    out = tmp_path / "o"
    assert invoke(runner, "batch", path, "--out", out, "--max-tokens", 4, "-q", *model_args).exit_code == 0
    before = piece_files(out)
    for flags, setting in ((["--max-tokens", 5], "max_new_tokens"), (["--max-tokens", 4, "--temperature", 1.3],
                                                                      "temperature")):
        result = invoke(runner, "batch", path, "--out", out, "--resume", *flags, *model_args)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"error: {out / 'tinyville' / 'scene' / 'well-3.md'} exists but was made "
                                        f"with other settings than this run's (its {setting} differs)")
    result = invoke(runner, "batch", path, "--out", out, "--resume", "--max-tokens", 4, *model_args)
    assert result.exit_code == 0 and "nothing to do: 2 complete already" in result.stderr, result.output
    assert piece_files(out) == before


def test_example_script_writes_a_scene_per_place_and_a_dialogue_per_pair(tmp_path, wide_gguf):
    import os
    import subprocess
    import sys

    world = tmp_path / "two.yaml"
    world.write_text("world: {id: two, name: Two}\nlocations:\n  - {id: 'yes', name: Yes Place}\n"
                     "  - {id: mill, name: The Mill}\ncharacters:\n  - {id: ada, name: Ada}\n  - {id: bo, name: Bo}\n")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHON": sys.executable}
    script = ROOT / "examples" / "scenes-and-dialogues.sh"
    args = ["bash", str(script), str(world), str(tmp_path / "made"), "--model", str(wide_gguf), "--dtype", "float32",
            "--max-tokens", "2", "--json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    paths = sorted(json.loads(line)["path"] for line in done.stdout.splitlines())
    assert [Path(p).relative_to(tmp_path / "made").as_posix() for p in paths] == [
        "two/dialogue/ada-bo-3.md", "two/scene/mill-2.md", "two/scene/yes-1.md"]
