"""``dashboard.picture``: a timeline's shapes sit on one axis, in time order, "now" and the
marks where the data puts them."""

from __future__ import annotations

from typing import Any

from pollable.dashboard.picture import LEFT, RIGHT, WIDTH, picture


def job(**timeline: Any) -> dict[str, Any]:
    line = {
        "ends_at": "2030-01-01T00:01:40Z",
        "final_status": "completed",
        "phases": [
            {"name": "queue", "start": "2030-01-01T00:00:00Z", "end": "2030-01-01T00:00:10Z"},
            {"name": "scanning", "start": "2030-01-01T00:00:10Z", "end": "2030-01-01T00:00:20Z"},
            {"name": "processing", "start": "2030-01-01T00:00:20Z", "end": "2030-01-01T00:01:30Z"},
            {"name": "finalizing", "start": "2030-01-01T00:01:30Z", "end": "2030-01-01T00:01:40Z"},
        ],
        "stages": [{"stage": "scanning", "reached_at": "2030-01-01T00:00:10Z"}],
        "settling": [
            {"at": "2030-01-01T00:00:20Z", "settled": 0},
            {"at": "2030-01-01T00:01:30Z", "settled": 10},
        ],
        "failed_at": None, "failed_stage": None, "cancelled_at": None, "cancelled_by": None,
    }  # fmt: skip
    line.update(timeline)
    return {
        "id": "job-1", "status": "running", "created_at": "2030-01-01T00:00:00Z",
        "now": "2030-01-01T00:00:50Z", "items": 10, "settled": 3, "timeline": line,
    }  # fmt: skip


def test_phases_tile_the_axis_and_now_is_in_proportion() -> None:
    shown = picture(job())
    assert [bar.name for bar in shown.bars] == ["queue", "scanning", "processing", "finalizing"]
    assert shown.bars[0].x == LEFT
    assert shown.bars[-1].x + shown.bars[-1].width == WIDTH - RIGHT
    assert shown.now is not None and shown.now.x == LEFT + (WIDTH - LEFT - RIGHT) * 0.5
    assert shown.curve.startswith(f"M{shown.bars[2].x},")
    assert "3 of 10 items" in shown.description


def test_a_cancel_and_a_far_later_now_are_marked() -> None:
    cancelled = job(final_status="cancelled", cancelled_at="2030-01-01T00:01:00Z",
                    cancelled_by="user-ada")  # fmt: skip
    cancelled["now"] = "2030-01-02T00:00:00Z"
    shown = picture(cancelled)
    assert [(m.kind, m.label) for m in shown.marks] == [("cancelled", "cancelled by user-ada")]
    assert shown.now is not None and shown.now.x == WIDTH - RIGHT
    assert "later" in shown.now.label


def test_a_job_that_never_ends_has_an_open_queue() -> None:
    stuck = job(ends_at=None, final_status="pending", settling=[], stages=[], phases=[
        {"name": "queue", "start": "2030-01-01T00:00:00Z", "end": None},
    ])  # fmt: skip
    shown = picture(stuck)
    assert [(bar.name, bar.open_ended) for bar in shown.bars] == [("queue", True)]
    assert shown.curve == "" and shown.end_label == "never ends"
