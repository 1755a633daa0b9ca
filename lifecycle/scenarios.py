"""The scenario catalogue: what a job will do, as data.

A scenario is chosen per request (``Prefer: scenario=NAME``), by a marker inside the
submitted content (``pollable:scenario=NAME``), or by the tenant's default.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from .model import STAGES, Failure, Stage, Timing

DEFAULT_SCENARIO = "happy"

#: Base durations (seconds) before jitter and the server's time scale.
_NORMAL = Timing(queue=1.0, scan=2.0, item_gap=0.5, item_duration=2.0, finalize=1.0)


@dataclass(frozen=True)
class Scenario:
    """A recipe for what a job will do.

    How a job ends follows from its items, as upstream: ``completed_with_failures`` means
    some items completed and some failed; a job whose items all failed (none completed)
    is ``failed``, with the error ``all_items_failed`` (``lifecycle.engine``).
    """

    name: str
    description: str
    timing: Timing = _NORMAL
    #: Share of the items the request leaves to the scenario (those no magic value
    #: decides) that fail. Positive: at least one fails. Below 1: one is left to complete
    #: whenever a failure remains, so the job ends ``completed_with_failures`` whenever it
    #: can; a job whose only such item is its only item that could complete cannot be
    #: partial: that item fails, and the job with it. 1: every such item fails.
    item_failure_rate: float = 0.0
    failure: Failure | None = None
    #: Fraction of the job's planned run after which the system cancels it.
    cancel_at: float | None = None
    #: Random +-share applied to every duration, from the job's seed.
    jitter: float = 0.2


_STAGE_ERRORS: Mapping[Stage, tuple[str, str]] = {
    Stage.SCANNING: ("scanning_failed", "Listing the source failed: the storage service timed out"),
    Stage.EXTRACTING: (
        "extraction_failed",
        "Text extraction failed: the extraction service is unavailable",
    ),
    Stage.CHUNKING: (
        "chunking_failed",
        "Chunking failed: the document structure could not be segmented",
    ),
    Stage.TAGGING: ("tagging_failed", "Tagging failed: the tagging model returned an error"),
    Stage.EMBEDDING: (
        "embedding_failed",
        "Embedding failed: the embedding service rejected the batch",
    ),
    Stage.FINALIZING: ("finalizing_failed", "Finalizing failed: results could not be recorded"),
}


def stage_error(stage: Stage) -> tuple[str, str]:
    """The error code and message a failure at ``stage`` reports."""
    return _STAGE_ERRORS[stage]


def _fails_at(stage: Stage) -> Scenario:
    code, message = stage_error(stage)
    return Scenario(
        name=f"fails_at_{stage.value}",
        description=f"Runs normally, then the whole job fails during {stage.value}.",
        failure=Failure(stage, code, message),
    )


def _catalogue() -> dict[str, Scenario]:
    extracting_code, extracting_message = stage_error(Stage.EXTRACTING)
    scenarios = [
        Scenario("happy", "Queues briefly, runs every stage, completes."),
        Scenario(
            "instant",
            "Completes the moment it is created (no queue, no processing time).",
            timing=Timing(0, 0, 0, 0, 0),
            jitter=0.0,
        ),
        Scenario(
            "slow",
            "Like happy, ten times slower.",
            timing=Timing(queue=10.0, scan=20.0, item_gap=5.0, item_duration=20.0, finalize=10.0),
        ),
        # A single item cannot be partly done. What partial promises above all is that
        # items fail (clients use it to exercise that path), so the one item fails and,
        # as upstream, a job in which nothing completed is failed.
        Scenario(
            "partial",
            "About a third of the items fail (at least one, never all), and the job completes "
            "with failures; a job of a single item cannot: that item fails, and the job fails.",
            item_failure_rate=1 / 3,
        ),
        Scenario(
            "failed",
            "The job fails during extracting with an error code and message.",
            failure=Failure(Stage.EXTRACTING, extracting_code, extracting_message),
        ),
        *(_fails_at(stage) for stage in STAGES),
        Scenario("cancelled", "The system cancels the job halfway through.", cancel_at=0.5),
        Scenario(
            "stuck_pending",
            "Never leaves the queue (until cancelled).",
            timing=replace(_NORMAL, queue=math.inf),
            jitter=0.0,
        ),
    ]
    return {scenario.name: scenario for scenario in scenarios}


CATALOGUE: Mapping[str, Scenario] = _catalogue()


class UnknownScenario(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(
            f"unknown scenario {name!r}; known scenarios: {', '.join(sorted(CATALOGUE))}"
        )
        self.name = name


def get(name: str) -> Scenario:
    try:
        return CATALOGUE[name]
    except KeyError:
        raise UnknownScenario(name) from None


_MARKER = re.compile(r"pollable:scenario=([a-z_]+)")


def find_marker(texts: Iterable[str]) -> str | None:
    """The first ``pollable:scenario=NAME`` marker inside the submitted texts, if any."""
    for text in texts:
        match = _MARKER.search(text)
        if match:
            return match.group(1)
    return None


def choose(*, preferred: str | None, marker: str | None, tenant_default: str | None) -> Scenario:
    """Pick the scenario: an explicit preference wins, then a content marker, then the tenant."""
    return get(preferred or marker or tenant_default or DEFAULT_SCENARIO)
