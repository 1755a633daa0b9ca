"""Deterministic numbers derived from submitted content (what the extraction "found")."""

from __future__ import annotations

import math
import re

_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_NAME = re.compile(r"\b[A-Z][a-zA-Z0-9]+")

#: Content types the upstream can process today (per the SDK); others fail.
PROCESSABLE_CONTENT_TYPES = frozenset({"text", "markdown", "conversation"})


def tokens(text: str) -> int:
    """Rough token count: four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def memory_yield(text: str) -> dict[str, int]:
    """Memories, entities and edges an extraction of ``text`` produces.

    One memory per sentence, one entity per distinct capitalised word, and an edge between
    entities that share a sentence (chained, so ``n`` entities in a sentence give ``n - 1``).
    """
    sentences = [s for s in (m.group(0).strip() for m in _SENTENCE.finditer(text)) if s]
    entities: set[str] = set()
    edges = 0
    for sentence in sentences:
        names = set(_NAME.findall(sentence))
        entities |= names
        edges += max(0, len(names) - 1)
    return {
        "memories": len(sentences),
        "entities": len(entities),
        "edges": edges,
        "tokens": tokens(text),
    }
