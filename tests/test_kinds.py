"""Request kinds and dialogue orders are declared once, in metagen.request; the rest use that."""

from __future__ import annotations

from metagen import dialogue, eval, jobs, output, pipeline, prompts, request


def test_kinds_are_named_by_their_request_classes():
    assert request.KINDS == ("story", "scene", "dialogue") and prompts.KINDS is request.KINDS
    assert all(prompts.REQUEST_KINDS[kind].kind == kind for kind in prompts.KINDS)
    assert output.piece.KINDS is prompts.KINDS and eval.KINDS is prompts.KINDS


def test_dialogue_orders_are_one_tuple():
    assert request.DIALOGUE_ORDERS == ("likelihood", "turns") and prompts.DIALOGUE_ORDERS is request.DIALOGUE_ORDERS
    assert pipeline.DIALOGUE_ORDERS is prompts.DIALOGUE_ORDERS and dialogue.DIALOGUE_ORDERS is prompts.DIALOGUE_ORDERS


def test_a_job_takes_its_request_fields_and_a_dialogue_its_order():
    # These tuples are spelled out in messages ("a story takes characters, ..."): their order is kept.
    assert jobs._KIND_FIELDS == {
        "story": ("characters", "location", "premise", "length", "opening"),
        "scene": ("location", "time", "weather", "mood", "characters", "opening", "start"),
        "dialogue": ("characters", "location", "topic", "turns", "order"),
    }
    assert jobs._KIND_WORDS == "story, scene or dialogue" and jobs._ORDER_WORDS == "likelihood or turns"
