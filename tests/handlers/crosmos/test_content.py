"""``lifecycle.content``: numbers derived from submitted text."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pollable.handlers.crosmos.content import PROCESSABLE_CONTENT_TYPES, memory_yield, tokens

PROPERTY = settings(max_examples=100, deadline=None, database=None)


@pytest.mark.parametrize(
    ("text", "expected"), [("", 1), ("a", 1), ("abcd", 1), ("abcde", 2), ("x" * 400, 100)]
)
def test_tokens(text, expected):
    assert tokens(text) == expected


def test_memory_yield_worked_example():
    text = "Alice met Bob in Paris. Carol stayed home!\nNobody called"
    assert memory_yield(text) == {
        "memories": 3,  # two sentences and a trailing line without punctuation
        "entities": 5,  # Alice, Bob, Paris, Carol, Nobody
        "edges": 2,  # Alice-Bob-Paris chained; Carol and Nobody alone
        "tokens": math.ceil(len(text) / 4),
    }


def test_memory_yield_counts_distinct_entities_once():
    result = memory_yield("Alice saw Alice. Alice left.")
    assert (result["memories"], result["entities"], result["edges"]) == (2, 1, 0)


def test_memory_yield_of_empty_text():
    assert memory_yield("") == {"memories": 0, "entities": 0, "edges": 0, "tokens": 1}
    assert memory_yield("...")["memories"] == 0  # punctuation alone is no sentence
    assert memory_yield(" \n \n")["memories"] == 0


@PROPERTY
@given(st.text(max_size=500))
def test_memory_yield_is_deterministic_and_consistent(text):
    result = memory_yield(text)
    assert result == memory_yield(text)
    assert set(result) == {"memories", "entities", "edges", "tokens"}
    assert all(value >= 0 for value in result.values())
    assert result["tokens"] == tokens(text)
    assert result["memories"] <= len(text)


def test_processable_content_types():
    assert {"text", "markdown", "conversation"} == PROCESSABLE_CONTENT_TYPES
