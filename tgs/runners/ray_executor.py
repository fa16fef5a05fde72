"""The Ray executor: a stage's samples sharded over a Ray cluster (one machine or many).

For one stage, :meth:`RayExecutor.map` starts one actor per GPU (or per CPU slot, or as
``workers`` says); each actor builds the stage worker once (loads its models) and then
processes batches. The driver keeps at most ``max_in_flight`` batches queued on each
actor (bounded memory, no idle GPU), collects results with ``ray.wait`` as they finish and
hands them to :func:`tgs.runners.executor.run_stage`, which commits them: the run
directory has one writer, the driver, exactly as with the local executor. Workers send
masks already encoded as the bytes of their file, so the compression (the costly part of
a commit) runs in parallel and the driver only writes and fsyncs.

Failures:

- an error in a sample is a value (the worker's own failure handling), recorded like a
  local failure;
- an actor that dies (killed, out of memory, a crash in native code, a lost node) is
  replaced (at most ``max_restarts`` times per stage); the batches it held are queued
  again. The batch it was running is charged one attempt; after ``max_attempts`` it is
  split into single samples, and a sample that still kills its worker is recorded as
  failed with kind ``worker_crash``, so one poisonous file cannot stop a run. Nothing is
  lost (every batch comes back) and nothing is duplicated (a dead actor's results never
  arrive, and the driver refuses a uid twice);
- a worker that cannot start (missing weights, no free GPU within ``start_timeout_s``)
  stops the run with that error before any sample is sent.

Without an address a local Ray instance is started (and shut down by :meth:`close`);
``address="auto"`` joins the cluster this node belongs to. Data paths and model sources
must be readable on every node (a shared filesystem, or the same layout on each).
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tgs import fast_paths
from tgs.errors import RunError, TGSError
from tgs.runners.local import _run_batch
from tgs.runners.outcomes import (
    Outcome,
    SampleError,
    SampleOutput,
    WorkerFactory,
    check_ray_available,
    portable_error,
)

__all__ = ["RayExecutor", "WorkerCrashError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}


class WorkerCrashError(TGSError):
    """A sample kept killing the worker process that ran it."""

    kind = "worker_crash"


# --------------------------------------------------------------------------- the actor


class StageActor:
    """Runs in a Ray worker process: builds the stage worker once, then processes batches.

    A failure to build it is kept and reported by :meth:`ready`, not raised, so the driver
    sees the real error (e.g. missing weights) instead of a generic "actor died".
    """

    def __init__(self, factory: WorkerFactory, num_threads: int) -> None:
        self._error: SampleError | None = None
        with fast_paths.counting() as loading:  # e.g. a compile fallback decided while loading
            try:
                self._worker = factory()
            except Exception as exc:  # reported by ready(); the driver stops the run with it
                logger.exception("the stage worker could not start")
                self._error = portable_error(exc)
        self._unsent = loading.as_record()
        torch = sys.modules.get("torch")  # a stage without torch does not pay for importing it
        if torch is not None:
            torch.set_num_threads(max(1, num_threads))

    def ready(self) -> SampleError | None:
        """None once the worker holds its models; else the error that stopped it."""
        return self._error

    def pid(self) -> int:
        return os.getpid()

    def process(self, batch: list[Any]) -> tuple[list[Outcome], dict[str, Any]]:
        """The batch's outcomes, and the fast-path counts of this call (and of loading, with the first batch)."""
        if self._error is not None:
            raise self._error
        with fast_paths.counting() as ledger:
            ledger.merge(self._unsent)
            self._unsent = {}
            outcomes = _run_batch(self._worker.process, batch)
        return [_portable(o) for o in outcomes], ledger.as_record()


def _portable(outcome: Outcome) -> Outcome:
    """An outcome fit to send to the driver: errors as data, masks already encoded."""
    if isinstance(outcome, Exception):
        return portable_error(outcome)
    if isinstance(outcome, SampleOutput):
        try:
            return outcome.encoded()
        except Exception as exc:  # e.g. masks of a wrong dtype: this sample fails, not the batch
            return portable_error(exc)
    return outcome


# --------------------------------------------------------------------------- driver-side bookkeeping


@dataclass
class _Task:
    batch: list[Any]
    attempts: int = 0  # times a worker died while running this batch


@dataclass
class _Slot:
    """One actor place; ``queue`` holds its in-flight tasks in submission order (head: running)."""

    index: int
    actor: Any
    queue: deque[tuple[Any, _Task]] = field(default_factory=deque)


@dataclass
class RayStats:
    """What the last :meth:`RayExecutor.map` did besides processing: for logs and tests."""

    workers: int = 0
    restarts: int = 0
    requeued_batches: int = 0
    crashed_samples: int = 0


class RayExecutor:
    """Shards batches over Ray actors; see the module docstring.

    address: None (start a local Ray instance), "auto", "HOST:PORT" or "ray://HOST:PORT".
    workers: actors per stage (None: as many as the cluster resources allow).
    resources: per actor, Ray option names (``num_gpus``, ``num_cpus``) or custom resource
        names -> amounts; None: ``{"num_gpus": 1, "num_cpus": 1}`` on a cluster with GPUs,
        else ``{"num_cpus": 1}``. Each actor runs torch with ``num_cpus`` threads.
    max_in_flight: batches queued on one actor at a time (>= 2 keeps it busy while the
        driver commits).
    max_restarts: actor replacements per stage (None: 4 per worker).
    max_attempts: deaths a batch may cause before it is split / its sample is failed.
    start_timeout_s: how long actors may take to be scheduled and load their models.
    runtime_env: Ray runtime environment (e.g. ``{"env_vars": {"HF_HOME": ...}}``).
    init_options: further ``ray.init`` arguments (e.g. ``num_cpus`` of a local instance).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        resources: Mapping[str, float] | None = None,
        max_in_flight: int = 2,
        max_restarts: int | None = None,
        max_attempts: int = 2,
        start_timeout_s: float = 600.0,
        runtime_env: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers: expected a positive integer, got {workers}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: expected >= 1, got {max_in_flight}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: expected >= 1, got {max_attempts}")
        if max_restarts is not None and max_restarts < 0:
            raise ValueError(f"max_restarts: expected >= 0, got {max_restarts}")
        for key, amount in (resources or {}).items():
            if amount < 0:
                raise ValueError(f"resources: {key} must be >= 0, got {amount}")
        check_ray_available()
        self.address = address
        self.workers = workers
        self.resources = dict(resources) if resources else None
        self.max_in_flight = max_in_flight
        self.max_restarts = max_restarts
        self.max_attempts = max_attempts
        self.start_timeout_s = start_timeout_s
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.init_options = dict(init_options or {})
        self.stats = RayStats()
        self._started_ray = False

    # ----------------------------------------------------------------- cluster
    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        options: dict[str, Any] = {"log_to_driver": False, **self.init_options}
        if self.runtime_env:
            options["runtime_env"] = self.runtime_env
        if self.address is None:
            options.setdefault("include_dashboard", False)
            logger.info("starting a local Ray instance")
            self._started_ray = True
        else:
            logger.info("connecting to the Ray cluster at %s", self.address)
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as exc:
            self._started_ray = False
            raise RunError(
                f"cannot reach a Ray cluster at {self.address!r}: {exc}",
                fix="start one with `ray start --head` (and `ray start --address HEAD:6379` on the other "
                "nodes), or leave out --ray-address to start a local one",
            ) from exc

    def _plan(self) -> tuple[int, dict[str, Any]]:
        """(number of actors, actor options) for the cluster as it is now."""
        import ray

        cluster = ray.cluster_resources()
        per_worker = dict(self.resources) if self.resources else (
            {"num_gpus": 1.0, "num_cpus": 1.0} if cluster.get("GPU", 0) >= 1 else {"num_cpus": 1.0}
        )
        fits = []
        for key, amount in per_worker.items():
            if amount > 0:
                have = cluster.get(_RAY_NAMES.get(key, key), 0.0)
                fits.append(math.floor(have / amount + 1e-9))
        workers = self.workers if self.workers is not None else max(0, min(fits, default=1))
        if workers < 1 or any(workers > fit for fit in fits):
            shown = ", ".join(f"{_RAY_NAMES.get(k, k)}={v:g}" for k, v in per_worker.items())
            have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items()) if not k.startswith(("node:", "memory",
                                                                                                   "object_store")))
            raise RunError(
                f"the Ray cluster cannot hold {workers or 'any'} worker(s) needing {shown} each (it has {have})",
                fix="lower --workers or --resources-per-worker (e.g. gpu=0.5 shares a GPU), or add nodes",
            )
        options: dict[str, Any] = {"max_restarts": 0, "max_concurrency": 1}
        custom = {k: v for k, v in per_worker.items() if k not in _RAY_NAMES}
        options.update({k: v for k, v in per_worker.items() if k in _RAY_NAMES})
        options.setdefault("num_cpus", 0 if per_worker.get("num_gpus") else 1)
        if custom:
            options["resources"] = custom
        return workers, options

    # ----------------------------------------------------------------- actors
    def _start(self, remote_cls: Any, options: dict[str, Any], factory: WorkerFactory, count: int) -> list[Any]:
        """``count`` actors that hold their models; raises the first start-up error."""
        import ray

        threads = max(1, int(options.get("num_cpus") or 1))
        actors = [remote_cls.options(**options).remote(factory, threads) for _ in range(count)]
        refs = [actor.ready.remote() for actor in actors]
        _, waiting = ray.wait(refs, num_returns=len(refs), timeout=self.start_timeout_s)
        try:
            if waiting:
                raise RunError(
                    f"{len(waiting)} of {count} Ray worker(s) did not start within {self.start_timeout_s:g} s",
                    fix="the cluster may lack free resources (see `ray status`); lower --workers or "
                    "--resources-per-worker",
                )
            for error in ray.get(refs):
                if error is not None:
                    raise SampleError(f"a Ray worker could not start: {error}", error.kind, error.original_type)
        except ray.exceptions.RayError as exc:
            self._kill(actors)
            raise RunError(
                f"a Ray worker died while starting (loading the models): {exc}",
                fix="see the worker logs under /tmp/ray/session_latest/logs on the worker's node",
            ) from exc
        except BaseException:
            self._kill(actors)
            raise
        return actors

    @staticmethod
    def _kill(actors: Sequence[Any]) -> None:
        import ray

        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # already gone
                logger.debug("actor already gone", exc_info=True)

    # ----------------------------------------------------------------- map
    def map(self, factory: WorkerFactory, batches: Sequence[list[T]]) -> Iterator[tuple[list[T], list[Outcome]]]:
        """Yield (batch, outcomes) for every batch, in the order they finish."""
        pending = deque(_Task(list(batch)) for batch in batches)
        self.stats = RayStats()
        if not pending:
            return
        import ray

        self._connect()
        count, options = self._plan()
        count = min(count, len(pending))
        remote_cls = ray.remote(StageActor)
        slots = [_Slot(i, actor) for i, actor in enumerate(self._start(remote_cls, options, factory, count))]
        self.stats.workers = count
        max_restarts = self.max_restarts if self.max_restarts is not None else 4 * count
        in_flight: dict[Any, _Slot] = {}
        logger.info("ray: %d worker(s), %s each, %d batch(es)", count, options, len(pending))
        try:
            while pending or in_flight:
                self._fill(slots, pending, in_flight)
                if not in_flight:
                    raise RunError(
                        f"every Ray worker died ({self.stats.restarts} replaced, the limit is {max_restarts}); "
                        f"{sum(len(t.batch) for t in pending)} sample(s) not done",
                        fix="see the worker logs under /tmp/ray/session_latest/logs; rerun to resume",
                    )
                [ref], _ = ray.wait(list(in_flight), num_returns=1)
                slot = in_flight.pop(ref)
                try:
                    outcomes, counts = ray.get(ref)
                    fast_paths.current().merge(counts)  # the driver's ledger: the run's manifest
                except ray.exceptions.RayTaskError as exc:  # process() itself failed (e.g. unpicklable result)
                    task = self._finish(slot, ref)
                    error = portable_error(exc.cause if isinstance(exc.cause, Exception) else exc)
                    yield task.batch, [error] * len(task.batch)
                    continue
                except ray.exceptions.RayError as exc:  # the actor (or its node) is gone
                    yield from self._on_death(slot, exc, pending, in_flight)
                    if self.stats.restarts < max_restarts:
                        self.stats.restarts += 1
                        slot.actor = self._replace(remote_cls, options, factory)
                    continue
                yield self._finish(slot, ref).batch, outcomes
        finally:
            self._kill([slot.actor for slot in slots if slot.actor is not None])

    def _replace(self, remote_cls: Any, options: dict[str, Any], factory: WorkerFactory) -> Any | None:
        """A new actor for a dead one; None (go on with the others) when it cannot start."""
        try:
            return self._start(remote_cls, options, factory, 1)[0]
        except TGSError as exc:
            logger.warning("a replacement Ray worker could not start (%s); going on with the others", exc)
            return None

    def _fill(self, slots: list[_Slot], pending: deque[_Task], in_flight: dict[Any, _Slot]) -> None:
        """Queue pending batches on live actors, up to ``max_in_flight`` each, round robin."""
        progress = True
        while pending and progress:
            progress = False
            for slot in slots:
                if pending and slot.actor is not None and len(slot.queue) < self.max_in_flight:
                    task = pending.popleft()
                    ref = slot.actor.process.remote(task.batch)
                    slot.queue.append((ref, task))
                    in_flight[ref] = slot
                    progress = True

    @staticmethod
    def _finish(slot: _Slot, ref: Any) -> _Task:
        for position, (queued, task) in enumerate(slot.queue):
            if queued == ref:
                del slot.queue[position]
                return task
        raise RuntimeError("a finished batch was not queued on its actor")

    def _on_death(
        self, slot: _Slot, exc: Exception, pending: deque[_Task], in_flight: dict[Any, _Slot]
    ) -> Iterator[tuple[list[Any], list[Outcome]]]:
        """Requeue a dead actor's batches; charge the one it was running; fail a sample that keeps killing.

        An actor runs its tasks in submission order, so the head of its queue is the batch
        that was running when it died; the others were only waiting and are not charged.
        """
        logger.warning("a Ray worker died (%s); the %d batch(es) it held are queued again",
                       type(exc).__name__, len(slot.queue))
        logger.debug("worker death", exc_info=exc)
        self._kill([slot.actor])
        slot.actor = None
        held = [task for _, task in slot.queue]
        for queued, _ in slot.queue:
            in_flight.pop(queued, None)
        slot.queue.clear()
        requeue: list[_Task] = []
        for position, task in enumerate(held):
            if position > 0:
                requeue.append(task)
                continue
            task.attempts += 1
            if task.attempts < self.max_attempts:
                requeue.append(task)
            elif len(task.batch) > 1:  # find the sample to blame: each alone, one last try
                requeue.extend(_Task([item], self.max_attempts - 1) for item in task.batch)
            else:
                self.stats.crashed_samples += 1
                crash = WorkerCrashError(
                    f"the worker process died {task.attempts} times while processing this sample "
                    f"(last: {type(exc).__name__}); it may be killed for memory or crash in native code",
                    fix="rerun to retry it; see the worker logs under /tmp/ray/session_latest/logs",
                )
                yield task.batch, [crash]
        self.stats.requeued_batches += len(requeue)
        pending.extendleft(reversed(requeue))

    # ----------------------------------------------------------------- lifetime
    def close(self) -> None:
        """Shut down the Ray instance if this executor started it."""
        if self._started_ray:
            import ray

            ray.shutdown()
            self._started_ray = False

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
