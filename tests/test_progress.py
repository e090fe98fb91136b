"""The batch progress model: counts per state, credits, ETA and the wait reason."""

from __future__ import annotations

from avatargen.progress import Progress


def test_counts_follow_jobs_through_their_states():
    progress = Progress(3, live=False)
    assert progress.counts == {"queued": 3, "waiting": 0, "generating": 0, "done": 0, "failed": 0}
    progress.move("queued", "waiting")
    progress.waiting("model loading, ~20 s")
    assert progress.wait_reason == "model loading, ~20 s"
    progress.move("waiting", "generating")
    assert progress.wait_reason == ""  # the model answered
    progress.move("generating", "done")
    progress.spent(3)
    progress.move("queued", "generating")
    progress.move("generating", "failed")
    assert progress.counts == {"queued": 1, "waiting": 0, "generating": 0, "done": 1, "failed": 1}
    assert progress.credits == 3
    assert progress.eta_seconds() is not None and progress.eta_seconds() >= 0


def test_no_eta_before_the_first_job_ends_and_text_names_every_state():
    progress = Progress(2, live=False)
    assert progress.eta_seconds() is None
    progress.waiting("rate limited, ~5 s")
    text = progress._render().plain
    for part in (
        "0/2",
        "queued 2",
        "waiting 0",
        "generating 0",
        "done 0",
        "failed 0",
        "credits 0",
        "rate limited",
    ):
        assert part in text
