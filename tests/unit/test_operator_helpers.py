"""The operator's pure helpers: what it watches, and how it knows a run is on the status already."""

from __future__ import annotations

import kopf

from controller.operator import _has_run, watch_only_ours
from controller.status import Outcome


def test_jobs_and_pods_are_watched_through_our_label_selector_and_broadcasts_are_not_filtered() -> None:
    settings = kopf.OperatorSettings()
    watch_only_ours(settings)
    selectors = settings.watching.label_selectors
    ours = ["app.kubernetes.io/managed-by=anchor-controller"]
    assert list(selectors.collect(kopf.Resource("batch", "v1", "jobs"))) == ours
    assert list(selectors.collect(kopf.Resource("", "v1", "pods"))) == ours
    assert list(selectors.collect(kopf.Resource("anchor.news", "v1alpha1", "newsbroadcasts"))) == []


def test_a_run_is_recognised_whichever_way_its_start_time_was_spelled() -> None:
    """A watch event carries `...Z`; a client model turned back into JSON gives `...+00:00`: one run either way."""
    run = Outcome("news-now-go", "Succeeded", "RunSucceeded", "ok", "2026-11-25T04:41:49Z", None, None)
    spelled_otherwise = {"job": "news-now-go", "phase": "Succeeded", "startedAt": "2026-11-25T04:41:49+00:00"}
    assert _has_run({"recentRuns": [spelled_otherwise]}, run)
    again = {"job": "news-now-go", "phase": "Succeeded", "startedAt": "2026-11-25T03:00:00Z"}
    assert not _has_run({"lastRun": again, "recentRuns": [again]}, run)  # a re-used token's new Job: a new run


def test_the_queues_place_each_waiting_run_and_say_which_places_are_not_written_yet() -> None:
    """Places among every Job Workload of a ClusterQueue (others' too); only our runs' places are written, each
    again only when it changed; a Workload admitted or gone leaves the queue and moves the others up."""
    from controller.queueing import _Ours, _Queues
    from controller.status import Waiting

    queues = _Queues()
    ours = _Ours("news", "evening", "evening-once")
    queues.update("theirs", Waiting("gpu", 0, 100.0, "theirs"), None)  # another team's Job, first in line
    queues.update("evening", Waiting("gpu", 0, 200.0, "evening"), ours)
    queues.update("elsewhere", Waiting("cpu", 0, 50.0, "elsewhere"), None)
    assert queues.changed() == [("evening", ours, 1)]
    queues.written("evening", 1)
    assert queues.changed() == [], "written once: nothing to write until it moves"
    queues.update("theirs", None, None)  # admitted
    assert queues.ahead_of("evening") == 0 and queues.changed() == [("evening", ours, 0)]
    queues.update("evening", None, None)
    assert queues.changed() == [] and queues.ahead_of("evening") is None
    queues.written("evening", 0)
    assert queues.changed() == [], "a place written for a run that has left the queue is not kept"
