"""The fast-path ledger: counts per call, nested calls add up, each fallback logged once, counts travel."""

from __future__ import annotations

import logging
import threading

import pytest

from tgs import fast_paths


def test_counts_belong_to_the_innermost_call_and_add_up_outwards() -> None:
    with fast_paths.counting() as outer:
        fast_paths.ran("ground.many")
        with fast_paths.counting() as inner:
            fast_paths.ran("ground.many", 2)
            fast_paths.fell_back("segment.many", "no segment_many")
        assert inner.as_record() == {"ran": {"ground.many": 2},
                                     "fallbacks": [{"path": "segment.many", "reason": "no segment_many", "count": 1}]}
        assert outer.ran["ground.many"] == 3 and outer.fallback_count("segment.many") == 1
    assert fast_paths.current() is not outer  # back to the process ledger


def test_a_fallback_is_logged_once_per_call_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="tgs.fast_paths"):
        with fast_paths.counting() as ledger:
            for _ in range(3):
                fast_paths.fell_back("compile", "the video model has no compiled form")
            with fast_paths.counting():  # a nested call of the same run: not logged again
                fast_paths.fell_back("compile", "the video model has no compiled form")
            fast_paths.fell_back("compile", "another reason")
        with fast_paths.counting():  # the next call says it again
            fast_paths.fell_back("compile", "the video model has no compiled form")
    assert ledger.fallback_count("compile") == 5 and ledger.fallback_count() == 5
    assert caplog.text.count("the video model has no compiled form") == 2
    assert caplog.text.count("another reason") == 1
    assert "fast path compile not taken" in caplog.text


def test_records_merge_as_a_worker_sends_them() -> None:
    with fast_paths.counting() as worker:
        fast_paths.ran("think.shared_prefix", 2)
        fast_paths.fell_back("think.batch", "a batch failed (RuntimeError: out of memory)")
    with fast_paths.counting() as driver:
        fast_paths.current().merge(worker.as_record())
        fast_paths.current().merge(worker.as_record())
    assert driver.as_record() == {
        "ran": {"think.shared_prefix": 4},
        "fallbacks": [{"path": "think.batch", "reason": "a batch failed (RuntimeError: out of memory)", "count": 2}],
    }


def test_a_decorated_call_and_each_thread_count_apart() -> None:
    @fast_paths.counting()
    def call(n: int) -> dict:
        for _ in range(n):
            fast_paths.ran("ground.many")
        return fast_paths.current().as_record()

    results: dict[int, dict] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, call(n))) for n in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {n: r["ran"] for n, r in results.items()} == {n: {"ground.many": n} for n in (1, 2, 3)}


def test_compile_for_a_model_without_a_compiled_form_is_a_counted_fallback() -> None:
    """``--compile`` compiles Grounding DINO and the SAM2 image model; the SAM2 video model has no
    compiled form, so under ``best`` (video mode) that part says so and is counted. Loading only:
    ``torch.compile`` wraps lazily, nothing is traced here."""
    from tgs.core.loading import load_stages
    from tgs.core.settings import Settings
    from tgs.presets import BEST, PAPER

    settings = Settings.tiny(device="cpu", dtype="fp32", compile=True)
    with fast_paths.counting() as ledger:
        load_stages(BEST, settings)
    assert ledger.ran == {"compile": 1}  # Grounding DINO
    assert dict(ledger.fallbacks) == {
        ("compile", "the SAM2-family video model (propagation) has no compiled form; it runs eagerly"): 1}
    with fast_paths.counting() as ledger:
        load_stages(PAPER, settings)
    assert ledger.ran == {"compile": 2} and not ledger.fallbacks  # Grounding DINO and the SAM2 image model
