"""A job's timeline as a picture: the control plane's ``timeline`` data laid out on one
time axis, as SVG shapes the template draws (no script, nothing fetched).

The axis runs from the job's creation to its end, or to its "now" if that is later but
not far later; a "now" beyond the axis is drawn at its right edge, marked as later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

WIDTH, LEFT, RIGHT = 880.0, 96.0, 16.0
BAR_Y, BAR_H = 28.0, 26.0
STAGE_Y, STAGE_ROWS, STAGE_ROW_H = 62.0, 6, 13.0
CURVE_TOP, CURVE_BOTTOM = 150.0, 250.0
HEIGHT = 290.0
PHASE_LABELS = {
    "queue": "queue",
    "scanning": "scanning",
    "processing": "items (extract, chunk, tag, embed)",
    "finalizing": "finalizing",
}


def seconds(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@dataclass
class Mark:
    x: float
    label: str
    kind: str
    #: Which row of labels it is drawn on (stages: as many as keep labels apart).
    row: int = 0
    #: Where its label sits: after the mark, or before it near the right edge.
    anchor: str = "start"


@dataclass
class Bar:
    x: float
    width: float
    name: str
    label: str
    open_ended: bool


@dataclass
class Picture:
    width: float = WIDTH
    height: float = HEIGHT
    left: float = LEFT
    right_edge: float = WIDTH - RIGHT
    bars: list[Bar] = field(default_factory=list)
    stages: list[Mark] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    curve: str = ""
    items: int = 0
    now: Mark | None = None
    start_label: str = ""
    end_label: str = ""
    description: str = ""
    bar_y: float = BAR_Y
    bar_h: float = BAR_H
    stage_y: float = STAGE_Y
    stage_row_h: float = STAGE_ROW_H
    curve_top: float = CURVE_TOP
    curve_bottom: float = CURVE_BOTTOM


def _span(job: dict[str, Any]) -> tuple[float, float, float]:
    line = job["timeline"]
    start = seconds(job["created_at"]) or 0.0
    now = seconds(job["now"]) or start
    end = seconds(line["ends_at"])
    last_phase = max((seconds(p["end"]) or start for p in line["phases"]), default=start)
    finish = end if end is not None else max(last_phase, start + 60.0)
    stop = finish
    if now > finish and now - start <= 1.5 * (finish - start):
        stop = now
    if stop <= start:
        stop = start + 1.0
    return start, stop, now


def picture(job: dict[str, Any]) -> Picture:
    """The shapes of ``job``'s timeline (a ``get_sandbox_job`` body)."""
    line = job["timeline"]
    start, stop, now = _span(job)
    inner = WIDTH - LEFT - RIGHT

    def x(moment: float) -> float:
        return round(LEFT + inner * (min(max(moment, start), stop) - start) / (stop - start), 2)

    shown = Picture(items=job["items"])
    for phase in line["phases"]:
        begin, end = seconds(phase["start"]) or start, seconds(phase["end"])
        right = x(end) if end is not None else x(stop)
        label = PHASE_LABELS.get(phase["name"], phase["name"])
        shown.bars.append(
            Bar(x(begin), max(right - x(begin), 1.0), phase["name"], label, end is None)
        )
    shown.stages = _spread(
        [Mark(x(seconds(s["reached_at"]) or start), s["stage"], "stage") for s in line["stages"]]
    )
    if line["failed_at"] is not None:
        where = line["failed_stage"] or "a stage"
        at = x(seconds(line["failed_at"]) or start)
        shown.marks.append(Mark(at, f"failed in {where}", "failed"))
    if line["cancelled_at"] is not None:
        who = line["cancelled_by"] or "someone"
        at = x(seconds(line["cancelled_at"]) or start)
        shown.marks.append(Mark(at, f"cancelled by {who}", "cancelled"))
    if line["settling"] and job["items"]:
        height, total = CURVE_BOTTOM - CURVE_TOP, job["items"]
        points = [(x(seconds(p["at"]) or start), p["settled"]) for p in line["settling"]]
        first_x = points[0][0]
        path = [f"M{first_x},{CURVE_BOTTOM}"]
        path += [f"L{px},{round(CURVE_BOTTOM - height * n / total, 2)}" for px, n in points]
        shown.curve = " ".join(path)
    later = now > stop
    shown.now = Mark(x(now), "now (later) \u2192" if later else "now", "now")
    shown.start_label = job["created_at"]
    shown.end_label = line["ends_at"] or "never ends"
    shown.description = _describe(job)
    return shown


def _spread(marks: list[Mark]) -> list[Mark]:
    """Stage labels on as many rows as keep them apart: the item stages are first reached
    within one item's time, often pixels apart."""
    ends: list[float] = []
    for mark in marks:
        width = 7.0 * len(mark.label) + 6
        if mark.x + width > WIDTH - RIGHT:
            mark.anchor = "end"
        row = next((i for i, end in enumerate(ends) if end <= mark.x), None)
        if row is None:
            row = (
                len(ends) if len(ends) < STAGE_ROWS else min(range(len(ends)), key=ends.__getitem__)
            )
            if row == len(ends):
                ends.append(0.0)
        ends[row] = mark.x + width
        mark.row = row
    return marks


def _describe(job: dict[str, Any]) -> str:
    """The picture in words, for a screen reader."""
    line = job["timeline"]
    phases = ", ".join(p["name"] for p in line["phases"])
    parts = [
        f"Job {job['id']} is {job['status']} at {job['now']}, with {job['settled']} of "
        f"{job['items']} items settled.",
        f"Phases: {phases}.",
        f"It ends {line['final_status']} at {line['ends_at']}."
        if line["ends_at"]
        else "It never ends.",
    ]
    if line["failed_at"]:
        parts.append(f"It fails in {line['failed_stage']} at {line['failed_at']}.")
    if line["cancelled_at"]:
        parts.append(f"It is cancelled by {line['cancelled_by']} at {line['cancelled_at']}.")
    return " ".join(parts)
