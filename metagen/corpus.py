"""Training examples in the exact shape of metagen's own prompts, and their automatic checks.

An example is one unit metagen asks the model to write (a story beat, a scene, a dialogue
line, an NPC's chat answer): the chat messages and any words metagen writes itself (`prefix`,
a transcript ending in "Name:"), then the text the model should write (`completion`). The
prompts are built by the same code the pipeline and `metagen chat` use, so an adapter tuned on
them (metagen.tune) sees at training time exactly what it sees when generating.

`check_example` holds a written target to the critic's own findings (metagen.critic): the
names the unit asks for, no invented names, no words copied from the prompt, the right
length, script and narrator's person, no banned or avoided words; a chat answer also to what
`metagen chat` keeps of it, and to the names its prompt shows.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

from metagen.chat import DEFAULT_PLAYER, ChatSession, repeats
from metagen.critic import COPY_RUN, critic_context, judge
from metagen.grounding import unknown_names
from metagen.kinship import invented_relatives
from metagen.dialogue import continue_dialogue, dialogue_prompt, speaker_order, spoken_line
from metagen.errors import RequestError
from metagen.pipeline import effective_config
from metagen.plan import BEAT_SENTENCES, make_plan, story_messages, with_beat
from metagen.opening import scene_start_words
from metagen.prompts import build_prompt
from metagen.request import DialogueRequest, Resolved, SceneRequest, StoryRequest, resolve_request
from metagen.session import Answer, Turn
from metagen.text import first_sentences, ngrams, words_of
from metagen.world import World

KINDS = ("beat", "scene", "line", "answer")
# Words a written target may have, per kind: a beat and a scene are asked for three or four
# sentences, a dialogue line and a chat answer for one to three.
WORDS = {"beat": (30, 120), "scene": (30, 120), "line": (2, 50), "answer": (2, 60)}
SENTENCES = {"beat": BEAT_SENTENCES, "scene": 4, "line": 3, "answer": 3}  # at most
SPOKEN = ("line", "answer")  # kinds the model writes as one "Name: line" of a transcript


@dataclass(frozen=True)
class Example:
    """One unit: the chat, metagen's own words after it, and what the model should write.

    end_of_turn: the model ends its turn after the completion (a beat, a scene); a dialogue
    line or a chat answer ends at its newline instead, which the completion holds.
    """

    kind: str
    world: str
    messages: tuple[dict, ...]
    completion: str
    prefix: str = ""
    end_of_turn: bool = True
    unit: str = ""  # where it came from, e.g. "story-1/turn" (for messages)
    focus: str = ""  # a beat's instruction (the critic asks for the names it gives)
    meta: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["messages"] = [dict(m) for m in self.messages]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Example":
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["messages"] = tuple(dict(m) for m in values.get("messages", ()))
        return cls(**values)


def story_examples(generator, world: World, request: StoryRequest, seed: int,
                   paragraphs: Sequence[str]) -> list[Example]:
    """One example per beat of the story `seed` plans: each beat's prompt holds the paragraphs
    before it as the model's own turns, as metagen.plan.write_story builds them."""
    resolved = resolve_request(world, request)
    plan = make_plan(world, resolved, seed)
    if len(paragraphs) != len(plan):
        raise RequestError(f"the plan has {len(plan)} beats and {len(paragraphs)} paragraphs were given")
    chat = story_messages(world, resolved)
    examples = []
    for beat, paragraph in zip(plan, paragraphs):
        chat = with_beat(chat, beat.instruction)
        examples.append(Example("beat", world.id, tuple(chat), paragraph.strip(), unit=beat.id,
                                focus=beat.instruction))
        chat = [*chat, {"role": "assistant", "content": paragraph.strip()}]
    return examples


def scene_example(generator, world: World, request: SceneRequest, text: str) -> Example:
    """The scene's prompt (metagen.prompts) and its text after metagen's opening, if any. A request
    without its own start words asks for the place's name, as metagen's task does when a scene's
    candidates open on different sense verbs ("The Old Mill smelled of", "... rang with": the
    default, pipeline._asked_start); the corpus's scenes open on the name and a verb of their own."""
    if request.start is None:
        request = replace(request, start=scene_start_words(resolve_request(world, request).location))
    cfg = effective_config(world, "scene", None, None, request)
    prompt = build_prompt(world, request, count_tokens=generator.count_tokens,
                          context_length=generator.context_length, max_new_tokens=cfg.max_new_tokens)
    text = text.strip()
    if not text.startswith(prompt.opening):
        raise RequestError(f"a scene of this request starts with {prompt.opening!r}")
    completion = text[len(prompt.opening):]
    return Example("scene", world.id, tuple(prompt.messages), completion, prefix=prompt.opening)


def dialogue_examples(generator, world: World, request: DialogueRequest, lines: Sequence[str]) -> list[Example]:
    """One example per line of a dialogue whose speakers take turns in the request's order
    (as metagen.dialogue writes a two-person dialogue): the transcript so far, "Name:", the line."""
    cfg = effective_config(world, "dialogue", None, None, request)
    messages = tuple(dialogue_prompt(generator, world, request, cfg).messages)
    speakers = speaker_order(world, request)
    if len(lines) != len(speakers):
        raise RequestError(f"the dialogue has {len(speakers)} turns and {len(lines)} lines were given")
    done: list[tuple[str, str]] = []
    examples = []
    for i, (speaker, line) in enumerate(zip(speakers, lines)):
        line = " ".join(line.split())
        examples.append(Example("line", world.id, messages, f" {line}\n", unit=f"line-{i + 1}",
                                prefix=continue_dialogue(done, speaker.name), end_of_turn=False,
                                meta={"speaker": speaker.id}))
        done.append((speaker.name, line))
    return examples


@dataclass(frozen=True)
class ChatRequest:
    """A chat to write answers for, as `metagen chat WORLD --as CHARACTER [--player P] [--location L]`
    starts it. A chat is no request kind of the pipeline (metagen.request); this names what one needs."""

    character: str  # the character's id (or name)
    player: str = DEFAULT_PLAYER
    location: str | None = None
    kind = "chat"


def _chat_config(world: World):
    """The settings `metagen chat` decodes with when no flag is given (its prompts depend on them)."""
    return effective_config(world, "dialogue", None, None)


def chat_examples(generator, world: World, request: ChatRequest,
                  turns: Sequence[tuple[str, str]]) -> list[Example]:
    """One example per answer of a chat whose player says each turn's line and whose character
    answers it: the prompt ChatSession.say decodes after (the earlier turns as the session holds
    them), and the answer as the model writes it, " answer\n" (metagen writes "Name:")."""
    character = world.character(request.character)
    location = world.location(request.location) if request.location else None
    session = ChatSession(generator, world, character, _chat_config(world), player=request.player, location=location,
                          moderation="off")
    examples = []
    for i, (line, answer) in enumerate(turns):
        line, answer = session.check_line(line), " ".join(answer.split())
        prompt = session.prompt(line)
        examples.append(Example("answer", world.id, tuple(prompt.messages), f" {answer}\n", prefix=prompt.suffix,
                                end_of_turn=False, unit=f"answer-{i + 1}",
                                meta={"character": character.id, "player": session.player}))
        # The turn as say() keeps it; only the text and where the prompt started shape later prompts.
        kept = Answer(text=answer, seed=0, tokens=0, generated_tokens=0, seconds=0.0,
                      prompt_tokens=len(prompt.ids), reused=0)
        session.turns.append(Turn(line, prompt.start, [kept]))
    return examples


def prompt_text(generator, example: Example) -> str:
    """The prompt as the model reads it (the chat template rendered, then metagen's own words)."""
    return generator.tokenizer.render_chat(list(example.messages)) + example.prefix


def check_example(generator, world: World, request, example: Example) -> list[str]:
    """What is wrong with a written target, by the critic's findings; [] when nothing is.

    request: the unit's request (a ChatRequest for a chat answer)."""
    prompt = prompt_text(generator, example)
    context = _critic_context(world, request, example, prompt)
    text = example.completion.strip()
    verdict = judge(text, context).findings
    problems = []
    if verdict.get("names", 1.0) < 1.0:
        problems.append("leaves out a name it is asked for: " + "; ".join(
            forms[0] for forms in context.names if not any(f.lower() in text.lower() for f in forms)))
    checks = {"invented": "names someone or something the world does not have",
              "garbled": "has text in a script the world does not use", "banned": "uses a banned or avoided word",
              "copied": f"copies {COPY_RUN} or more words in a row from the prompt",
              "markup": "has markup", "echo": "echoes an instruction", "unfinished": "ends mid-sentence",
              "voice": "narrates in the wrong person", "repetition": "repeats itself"}
    for key, message in checks.items():
        if verdict.get(key, 0.0) > (0.05 if key == "repetition" else 0.0):
            problems.append(message + (f' ("{_copied_words(text, context.prompt_words)} ...")' if key == "copied" else "")
                            + (": " + ", ".join(unknown_names(text, context.vocabulary, context.spellings))
                               if key == "invented" else ""))
    words = len(words_of(text))
    low, high = WORDS[example.kind]
    if not low <= words <= high:
        problems.append(f"has {words} words (want {low} to {high})")
    most = SENTENCES[example.kind]
    if first_sentences(text, most) != text.rstrip():
        problems.append(f"has more than {most} sentences")
    relatives = invented_relatives(text, context.relations)
    if relatives:  # named, so that a writer sees which word to change
        problems.append(f"gives someone a relative the world does not name: {', '.join(sorted(set(relatives)))}")
    if example.kind == "scene":
        # A target that starts elsewhere would teach the model to ignore the scene task's first instruction.
        # Held to the place's name only: the verb the task now adds ("was") came after the targets were
        # written (corpus/DATASHEET.md).
        name = scene_start_words(resolve_request(world, request).location)
        if not (example.prefix + text).lower().startswith(name.lower()):
            problems.append(f"does not start with the words its task gives: {name!r}")
    if example.kind in SPOKEN and (":" in text.split(" ", 1)[0] or "\n" in text):
        problems.append("holds a speaker's name or a line break")
    elif example.kind == "answer":
        problems += _answer_problems(world, request, text, context, prompt)
    return problems


def _copied_words(text: str, prompt_words: Sequence[str]) -> str:
    """The first COPY_RUN words of text that stand in the prompt too (folded, names out as the critic
    has them), for a writer to find."""
    words, shared = words_of(text), set(ngrams(prompt_words, COPY_RUN))
    return next((" ".join(words[i:i + COPY_RUN]) for i in range(len(words) - COPY_RUN + 1)
                 if tuple(words[i:i + COPY_RUN]) in shared), "")


def _answer_problems(world: World, request: ChatRequest, text: str, context, prompt: str) -> list[str]:
    """A chat answer's own checks: what metagen chat would cut from it, and names its prompt does not show."""
    problems = []
    # What `metagen chat` keeps of the model's text (ChatSession._spoken); a written answer it would
    # change teaches the model what metagen throws away.
    character = world.character(request.character)
    kept = spoken_line(text, [character.name, *character.aliases, request.player])
    if kept != text:
        problems.append(f"has what metagen cuts from an answer (a stage direction, quotes): {kept!r} is kept")
    # `metagen chat` refuses an answer that says a sample line again (ChatSession._fault); a target
    # that does would teach the model to write what is thrown away.
    said = next((line for line in character.sample_lines if repeats(text, line)), None)
    if said:
        problems.append(f"says a sample line again: {said!r}")
    # A chat prompt shows the character's card and the lore its turns call up, not the whole world: a
    # place or person of the world that it does not show is one the model could only have guessed.
    shown = {w for word in words_of(prompt) for w in (word, re.sub(r"'s$", "", word))}
    unseen = set(unknown_names(text, context.vocabulary & frozenset(shown))) - set(
        unknown_names(text, context.vocabulary))
    if unseen:
        problems.append(f"names what its prompt does not show: {', '.join(sorted(unseen))}")
    return problems


def _critic_context(world: World, request, example: Example, prompt: str):
    """The critic's context for a written target: copying measured against the whole prompt."""
    if isinstance(request, ChatRequest):
        character = world.character(request.character)
        location = world.location(request.location) if request.location else None
        context = critic_context(world, Resolved(None, (character,), location), prompt, _chat_config(world),
                                 names_required=False)
        # The player's name is theirs to give (ChatSession.vocabulary); their lines' words are not
        # counted, so an answer cannot take up a name a player line made up.
        return replace(context, vocabulary=context.vocabulary | frozenset(words_of(request.player)))
    resolved = resolve_request(world, request)
    cfg = effective_config(world, request.kind, None, None, request)
    person = world.style.point_of_view or ("second" if example.kind == "scene" else "third")
    context = critic_context(world, resolved, prompt, cfg, names_required=example.kind not in SPOKEN,
                             narrator_person="" if example.kind in SPOKEN else person, focus=example.focus)
    if example.kind == "scene":  # the scene's place is required, the people present are not
        context = replace(context, names=context.names[-1:])
    return context


def write_jsonl(examples: Sequence[Example], path) -> None:
    """Examples as JSON lines (the format `metagen tune` reads)."""
    with open(path, "w", encoding="utf-8") as file:
        for example in examples:
            file.write(json.dumps(example.to_dict(), ensure_ascii=False) + "\n")


__all__ = ["ChatRequest", "Example", "KINDS", "chat_examples", "check_example", "dialogue_examples", "prompt_text",
           "scene_example", "story_examples", "write_jsonl"]
