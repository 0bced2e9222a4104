"""metagen.jobs: a jobs file read and checked, every problem at once as file:line: field: what."""

from __future__ import annotations

import pytest

from metagen.errors import ConfigError
from metagen.jobs import load_jobs

from conftest import invoke, write_jobs


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if `metagen batch` gets as far as loading a model."""
    monkeypatch.setattr("metagen.commands.batch.load_generator",
                        lambda *a, **k: pytest.fail("the model was loaded"))


BAD_FILES = [
    ("jobs: []", "jobs.yaml:1: jobs: must be a non-empty list of jobs"),
    ("world: tiny.yaml\n", "jobs.yaml:1: jobs: missing"),
    ("- kind: story", "the top level must be a mapping"),
    ("", "jobs.yaml: is empty or only comments (a jobs file needs jobs:"),
    ("# nothing yet\n\n", "jobs.yaml: is empty or only comments"),
    ("jobs: [{kind: story}\n", "jobs.yaml:1: invalid YAML: a [list] or {mapping} that starts here is never closed"),
    # A tab after a key's colon indents nothing: it had been refused as "indent with spaces, not tabs".
    ("world: tiny.yaml\njobs:\n  - kind:\tscene\n",
     "jobs.yaml:3: invalid YAML: a tab after a key's colon is not allowed in YAML (replace it with a space)"),
    ("world: tiny.yaml\njobs:\n\t- kind: scene\n", "jobs.yaml:3: invalid YAML: a tab character (indent with spaces, not tabs)"),
    # A second document was answered "one world per file", in a file that holds jobs.
    ("world: tiny.yaml\njobs: [{kind: story}]\n---\njobs: [{kind: scene}]\n",
     "jobs.yaml:3: invalid YAML: a second document (a jobs file is one document; remove the extra '---')"),
    ("wrld: tiny.yaml\njobs: [{kind: story}]", "jobs.yaml:1: wrld: unknown key (did you mean 'world'?)"),
    ("world: tiny.yaml\njobs:\n  - kind: stroy", "jobs.yaml:3: jobs[0].kind: 'stroy' is not a kind (did you mean 'story'?)"),
    ("world: tiny.yaml\njobs:\n  - {location: well}", "jobs.yaml:3: jobs[0].kind: missing"),
    # premise: "   " had become the beat "This happens: ."; "" and U+200B as well, where the flags refuse them
    ("world: tiny.yaml\njobs:\n  - {kind: story, premise: '   '}", "jobs.yaml:3: jobs[0].premise: shows nothing (give text, or leave the key out)"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, premise: ''}", "jobs.yaml:3: jobs[0].premise: shows nothing"),
    ("world: tiny.yaml\njobs:\n  - {kind: scene, location: well, time: \"\\u200b\"}", "jobs.yaml:3: jobs[0].time: shows nothing"),
    ("world: tiny.yaml\njobs:\n  - {kind: dialogue, topic: ' '}", "jobs.yaml:3: jobs[0].topic: shows nothing"),
    # kind: null and a bare kind: dropped the job without a word ("nothing to do" when it was the only one)
    ("world: tiny.yaml\njobs:\n  - {kind: null, location: well}", "jobs.yaml:3: jobs[0].kind: is empty (story, scene or dialogue)"),
    ("world: tiny.yaml\njobs:\n  - kind:\n    location: well\n", "jobs.yaml:3: jobs[0].kind: is empty"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, topik: x}", "jobs[0].topik: unknown key (did you mean 'topic'?)"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, topic: x}", "jobs[0].topic: a story has no topic"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, start: The well}", "jobs[0].start: a story has no start"),
    ("world: tiny.yaml\njobs:\n  - {kind: scene, location: well, start: 3}", "jobs[0].start: must be text"),
    ("world: tiny.yaml\njobs:\n  - {kind: scene, location: well, count: 0}", "jobs[0].count: 0 is out of range"),
    ("world: tiny.yaml\njobs:\n  - {kind: scene, location: well, seed: -1}", "jobs[0].seed: -1 is out of range"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, turns: two}", "jobs[0].turns: must be a whole number"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, opening: maybe}", "jobs[0].opening: must be true or false"),
    ("world: tiny.yaml\njobs:\n  - {kind: dialogue, characters: [ada, bo], opening: false}",
     "jobs[0].opening: a dialogue has no opening"),
    ("world: tiny.yaml\njobs:\n  - {kind: dialogue, characters: [ada, bo], order: loud}", "jobs[0].order: 'loud' is not an order"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, format: docx}", "jobs[0].format: 'docx' is not a format"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, characters: {a: 1}}", "jobs[0].characters: must be a list"),
    ("world: tiny.yaml\nsettings: {temprature: 1}\njobs: [{kind: story}]",
     "jobs.yaml:2: settings.temprature: unknown setting (did you mean 'temperature'?)"),
    ("world: tiny.yaml\nsettings: {seed: 1}\njobs: [{kind: story}]", "settings.seed: set seeds with seed:"),
    ("jobs:\n  - {kind: story}", "jobs.yaml:2: jobs[0].world: no world"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, id: a}\n  - {kind: story, id: a}", "jobs.yaml:4: jobs[1].id: 'a' is used twice (also jobs[0])"),
    # Duplicate keys: YAML keeps the last one, so the first would be dropped without a word.
    ("world: tiny.yaml\njobs: [{kind: story}]\njobs: [{kind: scene}]", "jobs.yaml:3: jobs: given twice (first at line 2"),
    ("world: tiny.yaml\nseed: 1\nseed: 2\njobs: [{kind: story}]", "jobs.yaml:3: seed: given twice (first at line 2"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, seed: 1, seed: 2}", "jobs.yaml:3: jobs[0].seed: given twice"),
    ("world: tiny.yaml\nsettings: {top_k: 1, top_k: 2}\njobs: [{kind: story}]", "jobs.yaml:2: settings.top_k: given twice"),
    ("world: tiny.yaml\n[a]: 1\njobs: [{kind: story}]", "jobs.yaml:2: a key must be a plain name"),
    # An empty path had meant the default: a job's world: "" ran the file's world, out: "" wrote to ./out.
    ("world: tiny.yaml\njobs:\n  - {kind: story, world: ''}", "jobs.yaml:3: jobs[0].world: is empty (give a path, or leave"),
    ("world: tiny.yaml\njobs:\n  - {kind: story, id: ' '}", "jobs.yaml:3: jobs[0].id: is empty (give a name, or leave the key out for its default, job-1)"),
    ("world: tiny.yaml\nout: ' '\njobs: [{kind: story}]", "jobs.yaml:2: out: is empty (give a path, or leave the key out"),
    ("world: ''\njobs: [{kind: story, world: tiny.yaml}]", "jobs.yaml:1: world: is empty"),
]


@pytest.mark.parametrize("text, message", BAD_FILES)
def test_bad_jobs_files(runner, tmp_path, world, no_model, text, message):
    path = write_jobs(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_jobs(path)
    assert message in error.value.one_line()
    result = invoke(runner, "batch", path)
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("settings, line, field, message", [
    ("settings:\n  top_k: 1\n  top_k: 2\n", 4, "settings.top_k", "given twice (first at line 3; keep one)"),
    ("settings: {top_k: 1, top_k: 2}\n", 2, "settings.top_k", "given twice (first at line 2; keep one)"),
    ("settings: {logit_bias: {a: 1, a: 2}}\n", 2, "settings.logit_bias", "duplicate key 'a' (keep one)"),
])
def test_a_setting_given_twice_is_one_problem_named_at_the_setting(runner, tmp_path, world, no_model, settings,
                                                                  line, field, message):
    """A setting given twice was reported twice, as '2 problems' (the key, then the settings: mapping
    again, which the constructor refused as a whole), and a duplicate inside a setting's own mapping
    was named at settings: rather than the setting."""
    path = write_jobs(tmp_path, f"world: tiny.yaml\n{settings}jobs: [{{kind: story}}]\n")
    result = invoke(runner, "batch", path)
    assert result.exit_code == 2
    assert result.stderr == f"error: {path}:{line}: {field}: {message}\n"


def test_a_bad_value_in_settings_is_named_at_its_line_not_each_jobs(runner, tmp_path, world, no_model):
    """A bad value in the file's settings: was reported at the first job's line, as if the job held it."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nsettings:\n  top_k: 2\n  temperature: -1\njobs:\n  - kind: story\n"
                                "    characters: [ada]\n  - {kind: story, settings: {top_p: 3}}\n")
    result = invoke(runner, "batch", path, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr == (f"error: 2 problems in {path}: {path}:4: settings.temperature: --temperature must be in "
                             f"[0, 100], got -1.0 ({path}:8: jobs[1].settings.top_p: --top-p must be in (0, 1], "
                             "got 3.0)\n")


def test_a_bad_script_or_bias_key_is_named_at_its_setting_not_at_each_job(runner, tmp_path, world, no_model):
    """An unknown script or a malformed logit_bias key, wrong on its own like a negative temperature,
    was named at the first job's line ('jobs[0]: --scripts ...'), and only the first of them."""
    path = write_jobs(tmp_path, "world: tiny.yaml\nsettings:\n  scripts: [klingon]\n  logit_bias: {'#x': 1}\njobs:\n"
                                "  - {kind: story}\n  - {kind: story, settings: {logit_bias: {'': 2}}}\n")
    result = invoke(runner, "batch", path, "--out", tmp_path / "o")
    assert result.exit_code == 2 and not (tmp_path / "o").exists()
    assert result.stderr == (
        f"error: 3 problems in {path}: {path}:3: settings.scripts: --scripts 'klingon' is not a script; use latin, "
        "greek, cyrillic, armenian, hebrew, arabic, indic, thai, hangul, cjk, emoji, other, any "
        f"({path}:4: settings.logit_bias: --logit-bias token ids are written #123, got '#x'; "
        f"{path}:7: jobs[1].settings.logit_bias: --logit-bias needs a word or #token-id, got an empty one)\n")

def test_a_huge_number_in_a_jobs_file_is_named_by_its_size(tmp_path, world):
    """A 4,000-digit count or seed was echoed whole, making a 4,000-character error line."""
    huge = "9" * 4000
    path = write_jobs(tmp_path, f"world: tiny.yaml\njobs:\n  - {{kind: scene, location: well, count: {huge}, "
                                f"seed: -{huge}, settings: {{top_k: -{huge}}}}}\n")
    with pytest.raises(ConfigError) as error:
        load_jobs(path)
    text = error.value.one_line()
    assert "jobs[0].count: a number of more than 40 digits is out of range (1 to 10000)" in text
    assert "jobs[0].seed: a negative number of more than 40 digits is out of range (0 to 2**63 - 1)" in text
    assert "--top-k must be at least 0, got a negative number of more than 40 digits" in text
    assert "9" * 41 not in text


def test_every_problem_is_listed(tmp_path):
    path = write_jobs(tmp_path, "wrld: x\njobs:\n  - {kind: stroy}\n  - {kind: scene, count: -2}\n")
    with pytest.raises(ConfigError) as error:
        load_jobs(path)
    text = error.value.one_line()
    assert "5 problems in" in text and "wrld" in text and "stroy" in text and "count" in text
    assert "jobs[1].world: no world" in text
