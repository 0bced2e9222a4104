"""Tests for metagen.recipe: a piece's record read back for replay, and what a damaged one says."""

from __future__ import annotations

import pytest

from metagen.errors import ConfigError
from metagen.recipe import first_difference, recipe_from_record


def test_recipe_needs_the_record():
    with pytest.raises(ConfigError, match="does not record settings"):
        recipe_from_record({"request": {"kind": "story"}, "seed": 1, "model": {}, "world_files": ["w"]})


def test_a_bad_recorded_setting_or_request_names_the_file():
    record = {"request": {"kind": "story"}, "seed": 1, "model": {}, "world_files": ["w"], "settings": {}}
    for change, needle in (({"settings": {"temperature": -1}}, "--temperature must be in [0, 100]"),
                           ({"request": {"kind": "story", "lenght": "short"}}, "unknown field 'lenght'")):
        with pytest.raises(ConfigError, match="piece.md records what cannot be replayed") as info:
            recipe_from_record({**record, **change}, "piece.md")
        assert needle in info.value.one_line()


@pytest.mark.parametrize("request_, needle", [
    ({"kind": "story", "length": 5}, "the story request's length must be text, got a whole number"),
    ({"kind": "story", "characters": 5}, "the story request's characters must be a list of texts, got a whole number"),
    ({"kind": "story", "characters": [["ada"]]}, "characters must be a list of texts, got a list holding a list"),
    ({"kind": "story", "premise": 5}, "the story request's premise must be text, got a whole number"),
    ({"kind": "story", "premise": ["a", "b"]}, "the story request's premise must be text, got a list"),
    ({"kind": "story", "beats": "abc"}, "the story request's beats must be a list of texts, got text"),
    ({"kind": "scene", "location": {"a": 1}}, "the scene request's location must be text, got a mapping"),
    ({"kind": "dialogue", "characters": ["ada", "bo"], "turns": True}, "turns must be a whole number, got true/false"),
    ({"kind": ["story"]}, "unknown request kind ['story']"),
])  # fmt: skip
def test_a_recorded_request_of_the_wrong_type_names_the_field(request_, needle):
    """An edited piece's request: length: 5 or characters: 5 was a TypeError's traceback, premise: 5 or
    location: {a: 1} an AttributeError's once the world was loaded, a list as kind 'unhashable type'."""
    record = {"request": request_, "seed": 1, "model": {}, "world_files": ["w"], "settings": {}}
    with pytest.raises(ConfigError, match="piece.md records what cannot be replayed") as info:
        recipe_from_record(record, "piece.md")
    assert needle in info.value.one_line()


@pytest.mark.parametrize("model, needle", [
    ({"path": 5}, "model.path must be text, got a whole number"),
    ({"name": "x", "device": [1]}, "model.device must be text, got a list"),
    ({"adapter": 5}, "model.adapter must be a mapping of path and sha256, got a whole number"),
    ({"adapter": {"path": ["a"], "sha256": "0"}}, "model.adapter.path must be text, got a list"),
    ({"dtype": "float8"}, "model.dtype must be one of auto, float32, bfloat16, int8, int4, got 'float8'"),
    ({"prompt_dtype": "int4"}, "model.prompt_dtype must be one of auto, float32, bfloat16, got 'int4'"),
    ({"device": "tpu"}, "model.device must be one of cpu, cuda, auto (or cuda:N), got 'tpu'"),
    ({"device": "cuda:x"}, "model.device must be one of cpu, cuda, auto (or cuda:N), got 'cuda:x'"),
])  # fmt: skip
def test_a_recorded_model_of_the_wrong_type_names_the_field(model, needle):
    """model.path: 5 was a TypeError's traceback in replay, model.device: [1] an AttributeError's."""
    record = {"request": {"kind": "story"}, "seed": 1, "model": model, "world_files": ["w"], "settings": {}}
    with pytest.raises(ConfigError, match="piece.md records what cannot be replayed") as info:
        recipe_from_record(record, "piece.md")
    assert needle in info.value.one_line()
    recorded = {"name": "m", "path": "/m.gguf", "sha256": "0", "dtype": "int4", "device": "cpu", "adapter": None}
    assert recipe_from_record({**record, "model": recorded}).model == recorded
    on_gpu = {**recorded, "device": "cuda:0"}  # as torch names the device a piece was made on
    assert recipe_from_record({**record, "model": on_gpu}).model == on_gpu


@pytest.mark.parametrize("version, hint", [
    ("99.0.0", "it was made by metagen 99.0.0, newer than this one ({this}): replay it with metagen 99.0.0"),
    ("0.0.1", "metagen reads back the files it wrote; restore or regenerate this one"),
    ("{this}", "metagen reads back the files it wrote; restore or regenerate this one"),
    ("unknown", "metagen reads back the files it wrote; restore or regenerate this one"),
    (None, "metagen reads back the files it wrote; restore or regenerate this one"),
])  # fmt: skip
def test_a_record_a_newer_metagen_made_is_sent_to_that_version(version, hint):
    """A setting added after this version told the user to 'restore or regenerate' a file that was
    whole: it was made by a newer metagen, and that version replays it."""
    from metagen import __version__

    record = {"request": {"kind": "story"}, "seed": 1, "model": {}, "world_files": ["w"],
              "settings": {"a_later_knob": 3}, "metagen_version": version and version.format(this=__version__)}
    with pytest.raises(ConfigError, match="unknown generation setting 'a_later_knob'") as info:
        recipe_from_record(record, "piece.md")
    assert info.value.one_line().endswith(f"({hint.format(this=__version__)})")


def test_first_difference():
    assert first_difference("abc", "abc") is None
    assert first_difference("abc", "abd") == 2
    assert first_difference("ab", "abc") == 2
    assert first_difference("", "x") == 0
