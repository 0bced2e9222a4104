"""Moderation: the lexicon and matcher measured on a labelled set, a world's allows, `metagen moderate`
end to end, and the check while generating (the critic's finding, the front matter, enforce)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

from metagen import moderation, pipeline
from metagen.errors import WorldError
from metagen.moderation import check_text, policy_for, rating_allows, rating_for
from metagen.output import read_piece_file, render
from metagen.world import DESCRIPTORS, RATINGS, SEVERITIES, load_world

from conftest import TINY_WORLD, files_in, invoke, write_world

ROOT = Path(__file__).resolve().parent.parent
LABELS = Path(__file__).parent / "data" / "moderation_labels.tsv"
DOC = ROOT / "docs" / "moderation.md"

# The tiny world, rated PG, with a place whose name holds a descriptor's word, and a banned word.
WORLD = (TINY_WORLD.replace("style: {", "style: {rating: PG, ").replace("{id: mill, name: The Mill}",
                                                                      "{id: keep, name: Blood Keep}")
         + "content:\n  banned_words: [dragon]\n")


def world_file(tmp_path: Path, extra: str = "", text: str = WORLD) -> Path:
    return write_world(tmp_path, text + extra, "w.yaml")


def found(text: str, policy) -> list[tuple[str, str, str]]:
    return [(h.words, h.term.category, h.term.severity) for h in check_text(text, policy)]


# ----------------------------------------------------------------------------- the labelled set


def labelled() -> list[tuple[dict[str, str], str]]:
    rows = []
    for line in LABELS.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            labels, text = line.split("\t")
            rows.append(({} if labels == "clean" else dict(x.split(":") for x in labels.split(",")), text))
    return rows


def measure() -> dict[str, dict[str, int]]:
    """Per descriptor over the labelled set: texts flagged rightly (tp), wrongly (fp), missed (fn),
    and flagged rightly at the right severity; a text's severity is its strongest hit's."""
    policy = policy_for(rating="R")
    counts = {c: {"tp": 0, "fp": 0, "fn": 0, "severity": 0, "texts": 0} for c in DESCRIPTORS}
    for gold, text in labelled():
        got: dict[str, str] = {}
        for hit in check_text(text, policy):
            got[hit.term.category] = max(got.get(hit.term.category, "mild"), hit.term.severity, key=SEVERITIES.index)
        for c in DESCRIPTORS:
            counts[c]["texts"] += c in gold
            if c in gold and c in got:
                counts[c]["tp"] += 1
                counts[c]["severity"] += gold[c] == got[c]
            elif c in got:
                counts[c]["fp"] += 1
            elif c in gold:
                counts[c]["fn"] += 1
    return counts


def table(counts) -> str:
    """The docs/moderation.md table of the measured figures."""
    lines = ["| descriptor | texts | precision | recall | right severity |", "|---|---|---|---|---|"]
    for c, n in counts.items():
        precision = n["tp"] / (n["tp"] + n["fp"]) if n["tp"] + n["fp"] else 1.0
        lines.append(f"| {c} | {n['texts']} | {precision:.1%} ({n['tp']}/{n['tp'] + n['fp']}) | "
                     f"{n['tp'] / n['texts']:.1%} ({n['tp']}/{n['texts']}) | {n['severity']}/{n['tp']} |")
    return "\n".join(lines)


def test_the_labelled_set_covers_every_descriptor_at_each_severity_with_tricks_and_traps():
    rows = labelled()
    assert len(rows) >= 200
    cells = {(c, s) for gold, _ in rows for c, s in gold.items()}
    assert cells == {(c, s) for c in DESCRIPTORS for s in SEVERITIES}
    assert sum(not gold for gold, _ in rows) >= 80  # clean prose and false-positive traps
    assert sum(bool(re.search(r"[0-9$@!*.]\w|\w[ .-]\w[ .-]\w[ .-]|ｆ|ü", t)) for g, t in rows if g) >= 15


def test_precision_and_recall_per_descriptor_are_what_the_docs_say():
    counts = measure()
    for c, n in counts.items():
        assert n["tp"] / (n["tp"] + n["fp"]) >= 0.9, (c, n)
        assert n["tp"] / n["texts"] >= 0.9, (c, n)
    assert table(counts) in DOC.read_text(encoding="utf-8"), "update docs/moderation.md:\n" + table(counts)


TRICKS = [
    ("f u c k this", "f u c k"), ("sh1t happens", "sh1t"), ("a load of $h!t", "$h!t"), ("Fuuuuck!", "Fuuuuck"),
    ("F.U.C.K. it", "F.U.C.K"), ("f**k off", "f**k"), ("ｆｕｃｋ", "ｆｕｃｋ"), ("Fück", "Fück"), ("a$$hole", "a$$hole"),
    ("he said f-u-c-k", "f-u-c-k"), ("**Shit**, she said", "Shit"), ("Damn!", "Damn"),
]


@pytest.mark.parametrize("text,words", TRICKS, ids=[t for t, _ in TRICKS])
def test_tricks_are_caught_and_the_span_is_the_word_as_written(text, words):
    hits = check_text(text, policy_for(rating="G"))
    assert [h.words for h in hits] == [words]
    assert hits[0].exceeds


@pytest.mark.parametrize("text", ["Scunthorpe", "Essex, Sussex and Middlesex", "the class of Penistone", "Cockburn",
                                  "the assassin's passage", "Cumming", "Twatt", "Shitterton", "a shuttlecock",
                                  "cumulus", "Matsushita", "therapist", "grass", "hello", "Amsterdam",
                                  "coins chinked in the bag", "spiced bread", "water slapped the hull"])
def test_words_inside_other_words_and_place_names_are_never_flagged(text):
    assert check_text(text, policy_for(rating="G")) == []


# ----------------------------------------------------------------------------- the lexicon and ratings


def test_the_lexicon_file_is_whole_and_every_rating_allows_at_least_the_one_before():
    lexicon = moderation.load_lexicon()
    assert list(lexicon.ratings) == list(RATINGS)
    for milder, stronger in zip(RATINGS, RATINGS[1:]):
        for c in DESCRIPTORS:
            assert moderation.LEVELS.index(rating_allows(milder)[c]) <= moderation.LEVELS.index(rating_allows(stronger)[c])
    assert rating_for("language", "strong") == "R" and rating_for("fear", "mild") == "G"
    assert lexicon.library.startswith("glin-profanity ")
    assert sum(t.source == "profanity_list" for t in lexicon.terms.values()) > 200


def test_every_ordinary_phrase_stops_a_rule_that_would_match_it():
    lexicon = moderation.load_lexicon()
    policy = policy_for(rating="G")
    bare = moderation.Policy(rating="G", allowed=policy.allowed, terms=lexicon.terms, longest=policy.longest)
    dead = [t.rule for t in lexicon.ordinary.values() if not check_text(t.rule, bare)]
    assert dead == []  # an entry that no rule matches protects nothing: remove it
    assert all(check_text(t.rule, policy) == [] for t in lexicon.ordinary.values())


def test_inflections_and_phrases_prefer_the_longest_rule():
    policy = policy_for(rating="PG")
    assert found("The killers stabbed him", policy) == [("killers", "violence", "mild"), ("stabbed", "violence", "mild")]
    assert found("stabbed to death", policy) == [("stabbed to death", "violence", "strong")]
    assert found("a blood-soaked flag", policy) == [("blood-soaked", "blood", "strong")]
    assert found("a murder of crows", policy) == []


# ----------------------------------------------------------------------------- a world's allows and words


def test_a_world_reads_allows_descriptor_words_and_allowed_words(tmp_path):
    extra = ("  descriptor_words: {drugs_alcohol: {strong: [moonsugar]}}\n"
             "  allowed_words: [Cockburn Damn]\n")
    path = world_file(tmp_path, extra, WORLD.replace("rating: PG,", "rating: PG, allows: {violence: mild},"))
    world = load_world(path)
    assert world.style.allows == {"violence": "mild"}
    assert world.content.descriptor_words == {"drugs_alcohol": {"strong": ("moonsugar",)}}
    policy = policy_for(world)
    assert policy.allowed == {c: "mild" if c == "violence" else "none" for c in DESCRIPTORS}
    hits = check_text("Ada fought at Blood Keep, sold moonsugar, said damn and drank at Cockburn Damn.", policy)
    assert [(h.words, h.term.source, h.exceeds) for h in hits] == [
        ("fought", "lexicon", False), ("moonsugar", "world_words", True), ("damn", "lexicon", True)]


def test_a_worlds_banned_words_always_exceed_and_its_names_never_match(tmp_path):
    world = load_world(world_file(tmp_path))
    hits = check_text("A Dragon slept at Blood Keep; blood on the floor.", policy_for(world))
    assert [(h.words, h.term.category, h.term.source, h.implies, h.exceeds) for h in hits] == [
        ("Dragon", "banned", "banned_words", None, True), ("blood", "blood", "lexicon", "PG", False)]


def test_a_ban_of_marks_only_is_left_to_decoding_and_never_flags_a_word(tmp_path):
    """`banned_words: ["!!!"]` bans the token "!!!" while generating (bans.py), but moderation
    read it as leetspeak for "iii" and flagged "Henry III", never the "!!!" itself; a term with no
    letter or digit as written ("$$$" read as "sss") is no word moderation can find."""
    world = load_world(world_file(tmp_path, text=WORLD.replace("[dragon]", '[dragon, "!!!", "$$$"]')))
    assert world.content.banned_words == ("dragon", "!!!", "$$$")
    hits = check_text("King Henry III wept!!! SSS, a dragon, ii.", policy_for(world))
    assert [(h.words, h.term.source) for h in hits] == [("dragon", "banned_words")]


def test_no_world_and_no_rating_reports_without_a_target():
    policy = policy_for()
    assert policy.allowed is None
    assert [h.exceeds for h in check_text("fuck", policy)] == [False]


def test_a_rating_given_replaces_the_worlds_and_keeps_its_allows(tmp_path):
    path = world_file(tmp_path, text=WORLD.replace("rating: PG,", "rating: R, allows: {language: strong},"))
    policy = policy_for(load_world(path), "PG")
    assert policy.rating == "PG" and policy.allowed["language"] == "mild" and policy.allowed["blood"] == "none"


ALLOWS_BROKEN = [
    ("unknown-descriptor", "allows: {violense: mild}", "style.allows: unknown field 'violense' (did you mean 'violence'?)"),
    ("bad-severity", "allows: {violence: extreme}", "style.allows.violence: 'extreme' is not allowed (expected one of: mild, strong)"),
    ("over-the-rating", "allows: {language: strong}",
     "style.allows.language: 'strong' is more than rating PG allows (mild) (raise style.rating to R, or allow less)"),
    ("not-a-mapping", "allows: [violence]", "style.allows: got a list"),
]


@pytest.mark.parametrize("case,field,message", ALLOWS_BROKEN, ids=[c[0] for c in ALLOWS_BROKEN])
def test_bad_allows_are_named_by_file_line_and_field(tmp_path, case, field, message):
    path = world_file(tmp_path, text=WORLD.replace("rating: PG,", f"rating: PG, {field},"))
    with pytest.raises(WorldError) as info:
        load_world(path)
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}:2:") and message in problem


def test_bad_descriptor_words_are_named_with_did_you_mean(tmp_path):
    path = world_file(tmp_path, "  descriptor_words: {gamblng: {mild: [dice]}, fear: {severe: [x]}}\n")
    with pytest.raises(WorldError) as info:
        load_world(path)
    assert [p.split(": ", 1)[1] for p in info.value.problems] == [
        "content.descriptor_words: unknown field 'gamblng' (did you mean 'gambling'?)",
        "content.descriptor_words.fear: unknown field 'severe' (expected one of: mild, strong)"]


def test_the_schema_knows_allows_and_the_descriptor_words():
    import jsonschema

    schema = json.loads((ROOT / "metagen" / "data" / "world.schema.json").read_text(encoding="utf-8"))
    check = jsonschema.Draft202012Validator(schema)
    good = {"world": {"id": "w", "name": "W"}, "style": {"rating": "PG", "allows": {"violence": "mild"}},
            "content": {"descriptor_words": {"fear": {"strong": ["x"]}}, "allowed_words": ["y"]}}
    assert list(check.iter_errors(good)) == []
    good["style"]["allows"] = {"violense": "mild"}
    assert list(check.iter_errors(good))
    assert set(schema["properties"]["style"]["properties"]["allows"]["properties"]) == set(DESCRIPTORS)


# ----------------------------------------------------------------------------- metagen moderate


def piece_files(tmp_path: Path) -> Path:
    """A folder of one piece in each format, each with a strong swear on a known line and column."""
    from metagen.output import Piece

    base = dict(world_id="tinyville", world_hash="", world_files=[], request={}, model={}, settings={}, seed=1,
                prompt_tokens=1, output_tokens=1, lore_used=[], lore_left_out=[], finish_reason="eos", seconds=0.1,
                subject="ada")
    folder = tmp_path / "pieces"
    (folder / "deep").mkdir(parents=True)
    story = Piece(kind="story", text="Ada walked.\nShe said \"shit\" twice.", **base)
    talk = Piece(kind="dialogue", text="Ada: Hello.\nBo: Oh, sh1t {now}.", **base,
                 turns=[{"speaker": "Ada", "speaker_id": "ada", "line": "Hello."},
                        {"speaker": "Bo", "speaker_id": "bo", "line": "Oh, sh1t {now}."}])
    (folder / "story.md").write_text(render(story, "md"), encoding="utf-8")
    (folder / "story.json").write_text(render(story, "json"), encoding="utf-8")
    (folder / "deep" / "talk.yarn").write_text(render(talk, "yarn"), encoding="utf-8")
    (folder / "deep" / "talk.ink").write_text(render(talk, "ink"), encoding="utf-8")
    (folder / "deep" / "notes.txt").write_text("clean\nand then: fuck.\n", encoding="utf-8")
    (folder / "deep" / "model.gguf").write_bytes(b"GGUF\x00\x00")  # not a text suffix: never read in a folder
    (folder / "deep" / "up").symlink_to("..")  # a loop
    return folder


def where(text: str, word: str) -> str:
    line_no, line = next((i, ln) for i, ln in enumerate(text.splitlines(), 1) if word in ln)
    return f"{line_no}:{line.index(word) + 1}"


def test_moderate_names_each_span_by_the_files_own_line_and_column(runner, tmp_path):
    folder = piece_files(tmp_path)
    result = invoke(runner, "moderate", folder, "--rating", "PG")
    assert result.exit_code == 1, result.output
    lines = sorted(result.stdout.splitlines())
    md, js = (folder / "story.md").read_text(), (folder / "story.json").read_text()
    yarn, ink = (folder / "deep" / "talk.yarn").read_text(), (folder / "deep" / "talk.ink").read_text()
    expected = [
        (folder / "deep" / "notes.txt", "2:11", "fuck", "fuck"),
        (folder / "deep" / "talk.ink", where(ink, "sh1t"), "sh1t", "shit"),
        (folder / "deep" / "talk.yarn", where(yarn, "sh1t"), "sh1t", "shit"),
        (folder / "story.json", where(js, "shit"), "shit", "shit"),
        (folder / "story.md", where(md, "shit"), "shit", "shit"),
    ]
    assert lines == sorted(f"{path}:{at}: language strong: \"{words}\" (rule '{rule}' from metagen's descriptor "
                           f"lexicon; implies R, over PG)" for path, at, words, rule in expected)
    assert "checked 5 files against PG: 5 over it, 0 within it; the text implies R" in result.stderr


@pytest.mark.parametrize("name, body, at", [
    ("notes.txt", "a shit\nfuck", ["1:3", "2:1"]),
    ("story.json", '{"text": "a shit"}', ["1:13"]),
])
def test_a_byte_order_mark_is_no_column_of_the_first_line(runner, tmp_path, name, body, at):
    """A file saved by Notepad opens with a byte-order mark, which editors hide: moderate counted it,
    and named every span of line 1 a column to the right of where an editor shows it."""
    path = tmp_path / name
    path.write_bytes(b"\xef\xbb\xbf" + body.encode("utf-8"))
    result = invoke(runner, "moderate", path, "--rating", "PG")
    assert result.exit_code == 1, result.output
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [f"{path}:{where}" for where in at]


def test_moderate_dash_reads_the_text_from_standard_input(runner, tmp_path):
    """`echo ... | metagen moderate -` said "error: -: no such file or folder" (exit 2): '-' was a file name."""
    from metagen.cli import app

    notes = tmp_path / "notes.txt"
    notes.write_text("a shit\n", encoding="utf-8")
    result = runner.invoke(app, ["moderate", "-", str(notes), "-", "--rating", "PG"], input="clean\nand then: fuck.\n")
    assert result.exit_code == 1, result.output
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == ["<stdin>:2:11", f"{notes}:1:3"]
    assert result.stderr.startswith("checked 2 files against PG: 2 over it")  # '-' twice reads it once
    clean = runner.invoke(app, ["moderate", "-", "--rating", "G", "--json"], input="")
    assert clean.exit_code == 0 and json.loads(clean.stdout)["files"] == 1


def test_moderate_reads_a_json_file_with_a_number_past_ints_limit_as_text(runner, tmp_path):
    """A .json holding a 5,001-digit number was int()'s "Exceeds the limit" traceback."""
    from metagen.cli import app

    (tmp_path / "big.json").write_text('{"text": "a shit", "n": 1' + "0" * 5000 + "}", encoding="utf-8")
    result = runner.invoke(app, ["moderate", str(tmp_path / "big.json"), "--rating", "PG"])
    assert result.exit_code == 1, result.output  # over the rating, read as plain text
    assert result.stdout.startswith(f"{tmp_path / 'big.json'}:1:")


def test_moderate_reads_a_file_named_dash_given_as_a_path(runner, tmp_path):
    """`metagen moderate ./-` read standard input, as `-` does: pathlib folds './-' to '-'."""
    from metagen.cli import app

    (tmp_path / "-").write_text("a shit\n", encoding="utf-8")  # tmp_path is the current folder (conftest)
    result = runner.invoke(app, ["moderate", "./-", "-", "--rating", "PG"], input="and then: fuck.\n")
    assert result.exit_code == 1, result.output
    assert [line.split(": ")[0] for line in result.stdout.splitlines()] == [f"{tmp_path / '-'}:1:3", "<stdin>:1:11"]
    assert result.stderr.startswith("checked 2 files against PG: 2 over it")


@pytest.mark.parametrize(("data", "said"), [
    (b"a\x00b", "error: <stdin> looks like a binary file, not text (NUL at byte 1)"),
    (b"\xff", "error: <stdin> is not UTF-8 text (byte 0xff at offset 0)"),
    (b"a" * (8 * 2**20 + 1), "error: <stdin> is over the 8 MiB limit for a file to check"),
])
def test_moderate_dash_refuses_standard_input_that_is_not_text(runner, data, said):
    from metagen.cli import app

    result = runner.invoke(app, ["moderate", "-", "--rating", "PG"], input=data)
    assert result.exit_code == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(said), line


def test_moderate_refuses_a_folder_with_nothing_to_check(runner, tmp_path):
    """A CI gate given the wrong folder (empty, or world files only) passed: "checked 0 files", exit 0."""
    (tmp_path / "empty").mkdir()
    (tmp_path / "worlds").mkdir()
    (tmp_path / "worlds" / "w.yaml").write_text("world: {id: w, name: W}\n", encoding="utf-8")
    for folder in (tmp_path / "empty", tmp_path / "worlds"):
        result = invoke(runner, "moderate", folder, "--rating", "PG")
        assert result.exit_code == 2
        assert result.stderr == (f"error: {folder}: a folder with no md, json, yarn, ink or txt file to check "
                                 "(give the folder the pieces were written to)\n")


def test_moderate_json_and_exit_zero_when_nothing_exceeds(runner, tmp_path):
    folder = piece_files(tmp_path)
    result = invoke(runner, "moderate", folder / "story.md", folder / "deep", "--rating", "R", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["rating"] == "R" and data["exceeds"] is False and data["implies"] == "R"
    # deep/up links back to the top: story.json is found through it, story.md is not read twice
    assert data["files"] == 5 and [Path(f["path"]).name for f in data["findings"]] == [
        "story.md", "notes.txt", "talk.ink", "talk.yarn", "story.json"]
    assert {f["source"] for f in data["findings"]} == {"lexicon"}
    assert result.stderr == ""


def test_moderate_with_a_world_uses_its_rating_bans_and_names(runner, tmp_path):
    path = world_file(tmp_path)
    text = tmp_path / "t.txt"
    text.write_text("At Blood Keep Ada fought a dragon.\n", encoding="utf-8")
    result = invoke(runner, "moderate", text, "--world", path, "--all")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        f"{text}:1:19: violence mild: \"fought\" (rule 'fought' from metagen's descriptor lexicon; implies PG, within PG)",
        f"{text}:1:28: banned: \"dragon\" (rule 'dragon' from the world's banned words; never allowed in this world)"]


BAD_INPUT = [
    ("missing", lambda p: [p / "nope.txt"], "nope.txt: no such file or folder"),
    ("binary", lambda p: [_write(p / "b.txt", b"ab\x00cd")], "b.txt looks like a binary file, not text (NUL at byte 2)"),
    ("not-utf8", lambda p: [_write(p / "l.txt", b"caf\xe9")], "l.txt is not UTF-8 text (byte 0xe9 at offset 3)"),
    ("binary-in-a-folder", lambda p: [_write(p / "d" / "x.md", b"\x00")] and [p / "d"], "x.md looks like a binary"),
    ("huge", lambda p: [_write(p / "h.txt", b"a" * 2000)], "h.txt is over the"),
    ("fifo", lambda p: [_fifo(p / "f.txt")], "f.txt: is a FIFO (named pipe), not a regular file"),
    ("bad-rating", lambda p: [_write(p / "t.txt", b"x"), "--rating", "PG13"],
     "--rating must be one of G, PG, PG-13, R, got 'PG13' (did you mean 'PG-13'?)"),
]


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("case,args,message", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_two_with_nothing_reported(runner, tmp_path, monkeypatch, case, args, message):
    monkeypatch.setattr("metagen.output.texts.MAX_TEXT_BYTES", 1000)
    (tmp_path / "ok.txt").write_text("fuck\n", encoding="utf-8")  # read first: its finding is never printed
    result = invoke(runner, "moderate", tmp_path / "ok.txt", *args(tmp_path))
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and message in line


# ----------------------------------------------------------------------------- while generating


@pytest.fixture
def scripted(monkeypatch):
    """Generator.complete answering row k with texts[k % len(texts)], whatever the prompt."""
    from metagen.generator import Completion, Generator

    texts: list[str] = []

    def complete(self, prompts, cfg, *, seeds=None, on_text=None, reuse=None, plain=None, forced=None):
        return [Completion(texts[k % len(texts)], [5] * 6, len(p), -3.0, "eos", s, 0.0)
                for k, (p, s) in enumerate(zip(prompts, seeds))]

    monkeypatch.setattr(Generator, "complete", complete)
    return texts


def scene(wide_generator, world, mode: str):
    request = pipeline.make_request("scene", world, location="well")
    cfg = pipeline.effective_config(world, "scene", None, {"candidates": 2, "max_new_tokens": 20}, request)
    return pipeline.compose(wide_generator, world, [request], cfg, seeds=[5], moderation=mode).pieces[0]


def test_a_candidate_over_the_rating_loses_and_the_verdict_is_recorded(wide_generator, scripted, tmp_path):
    world = load_world(world_file(tmp_path))
    scripted[:] = ["Ada stood at The Well and said shit, the well is dry.", "It was quiet."]
    off = scene(wide_generator, world, "off")
    assert off.text.startswith("Ada stood") and off.moderation == {} and "rating" not in json.dumps(off.critic)
    report = scene(wide_generator, world, "report")
    assert report.text == "It was quiet." and report.critic["chosen"] == 1
    assert report.critic["candidates"][0]["rating"] == 1.0 and "rating" not in report.critic["candidates"][1]
    assert report.moderation == {"mode": "report", "rating": "PG", "exceeds": False, "implies": "G", "hits": []}
    scripted[:] = ["Ada said shit.", "Bo said shit."]
    still = scene(wide_generator, world, "report")
    assert still.moderation["exceeds"] and still.moderation["hits"][0] == {
        "line": 1, "column": 10, "words": "shit", "category": "language", "severity": "strong", "source": "lexicon",
        "rule": "shit", "implies": "R", "exceeds": True}
    front = yaml.safe_load(render(still, "md").split("---\n")[1])
    assert front["moderation"] == still.moderation and list(front)[-4:] == ["moderation", "subject",
                                                                             "metagen_version", "created"]


def test_enforce_writes_what_is_within_the_rating_and_refuses_the_rest(runner, tmp_path, model_args, scripted):
    path = world_file(tmp_path)
    scripted[:] = ["Bo said shit at The Well."]
    out = tmp_path / "out"
    result = invoke(runner, "describe-scene", path, "-l", "well", "--seed", 3, "--out", out, "--candidates", 2,
                    "--moderation", "enforce", *model_args)
    assert result.exit_code == 1
    assert files_in(out) == []
    assert result.stderr.strip().splitlines()[-1] == (
        "error: not written, 1 of 1: scene well seed 3 exceeds PG: 'shit' at line 1, column 9 is language "
        "strong, which needs R (its candidates all exceeded the rating; try other seeds, more --candidates, or "
        "--moderation report to write it anyway)")
    scripted[:] = ["Bo said shit at The Well.", "Bo waited at The Well."]
    result = invoke(runner, "describe-scene", path, "-l", "well", "--seed", 3, "--out", out, "--candidates", 2,
                    "--moderation", "enforce", *model_args)
    assert result.exit_code == 0, result.output
    (written,) = files_in(out)
    assert read_piece_file(written)["moderation"]["mode"] == "enforce"


def test_batch_enforce_writes_the_pieces_within_the_rating_and_names_the_rest(runner, tmp_path, model_args,
                                                                             scripted):
    world_file(tmp_path)
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text("world: w.yaml\nseed: 1\nsettings: {max_new_tokens: 8, candidates: 1}\njobs:\n"
                    "  - {kind: scene, location: well, count: 2}\n", encoding="utf-8")
    scripted[:] = ["Bo said fuck."]
    result = invoke(runner, "batch", jobs, "--out", tmp_path / "out", "--moderation", "enforce", *model_args)
    assert result.exit_code == 1
    assert files_in(tmp_path / "out") == []
    assert result.stderr.strip().splitlines()[-1].startswith(
        "error: not written, 2 of 2: scene well seed 1 exceeds PG: 'fuck' at line 1, column 9 is language strong, "
        "which needs R (and 1 more)")


def test_moderation_off_and_report_write_the_same_text_when_nothing_exceeds(wide_generator, tmp_path):
    """The tiny model's own candidates: report changes nothing but the new front matter field."""
    world = load_world(world_file(tmp_path))
    for kind, fields in [("scene", {"location": "well"}), ("story", {"characters": ("ada",)}),
                         ("dialogue", {"characters": ("ada", "bo"), "turns": 2})]:
        request = pipeline.make_request(kind, world, **fields)
        cfg = pipeline.effective_config(world, kind, None, {"max_new_tokens": 12}, request)
        off, report = (pipeline.compose(wide_generator, world, [request], cfg, seeds=[4], moderation=m).pieces[0]
                       for m in ("off", "report"))
        assert report.text == off.text and report.critic == off.critic
        timed = ("created", "seconds")
        assert {k: v for k, v in report.front_matter().items() if k not in ("moderation", *timed)} == \
            {k: v for k, v in off.front_matter().items() if k not in timed}
        assert report.moderation["mode"] == "report" and "moderation" not in off.front_matter()


def test_replay_reads_the_recorded_mode_and_a_piece_without_one_replays_identical(runner, tmp_path, model_args):
    path = world_file(tmp_path)
    out = tmp_path / "out"
    result = invoke(runner, "describe-scene", path, "-l", "well", "--seed", 2, "--out", out,
                    "--max-tokens", 12, "--moderation", "off", *model_args)
    assert result.exit_code == 0, result.output
    (made,) = files_in(out)
    assert "moderation" not in read_piece_file(made)  # as every piece made before moderation existed
    result = invoke(runner, "replay", made, *model_args[2:])
    assert result.exit_code == 0 and result.stdout.startswith("identical: "), result.output


def test_bad_moderation_mode_is_refused_before_the_model(runner, tmp_path):
    result = invoke(runner, "story", world_file(tmp_path), "-c", "ada", "--moderation", "enforse")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: --moderation must be one of off, report, enforce, got 'enforse' "
                                     "(did you mean 'enforce'?)")
