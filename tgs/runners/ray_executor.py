"""The Ray executor: a stage's batches on a Ray cluster (one machine or many), through Ray Data.

The one distributed path of every command (``tgs run``, ``tgs think``, ``tgs
ground-segment``, ``tgs segment --batch``). :meth:`RayExecutor.map` turns the batches into
a Ray Dataset of one small row each (the batch's id and its *descriptors*: sample
uids and paths, never decoded frames; Ray serialises them as Python objects) and maps it with ``map_batches`` over an actor pool
(:class:`ray.data.ActorPoolStrategy`): each actor builds the stage worker once (loads its
models) and then processes batch after batch, decoding its media itself, so decoded frames
never enter the object store. Ray Data's streaming executor gives back-pressure (at most
``max_in_flight`` batches queued per actor, outputs pulled by the driver as they finish),
and ``num_gpus`` / ``num_cpus`` per actor place one actor per GPU (or CPU slot).

The driver (the process iterating :meth:`map`) gets each batch's outcomes as it finishes
and hands them to :func:`tgs.runners.executor.run_stage`, which commits them: the run
directory has one writer, the driver, exactly as with the local executor, so a killed
driver resumes from its run directory. Workers send masks already encoded as the bytes of
their file, so compression runs in parallel and the driver only writes and fsyncs.

Failures:

- an error in a sample is a value (the worker's own failure handling), recorded like a
  local failure;
- an actor that dies (killed, out of memory, a crash in native code, a lost node) is
  restarted by Ray Data and the batches it held are retried there (its actor-pool
  defaults). A small ledger actor counts, per batch, the workers that died running it:
  after ``max_attempts`` deaths the batch's samples run one at a time, and a sample whose
  worker dies while it runs alone is answered as failed with kind ``worker_crash`` instead
  of being run again, so one poisonous file cannot stop a run. Nothing is lost (every
  batch comes back) and nothing is duplicated (a batch id is accepted once, and the
  driver refuses a uid twice). Such a sample comes back as an exception, not as the
  worker's records: ``run_stage`` commits a failure record for it, and a stage that writes
  records of its own for a failure (``tgs segment --batch``: one index line per
  expression) turns the exception into them;
- a worker that cannot start (missing weights) stops the run with that error before
  anything is committed; a request the cluster cannot hold (more workers or GPUs than it
  has) is refused before anything starts.

Without an address a local Ray instance is started (and shut down by :meth:`close`);
``address="auto"`` joins the cluster this node belongs to. Data paths and model sources
must be readable on every node (a shared filesystem, or the same layout on each), and
absolute: a worker's current folder is not the driver's (``segment_many`` makes its OUT
absolute before it is pickled).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
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

__all__ = ["RayExecutor", "RayStats", "WorkerCrashError"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RAY_NAMES = {"num_cpus": "CPU", "num_gpus": "GPU"}
_START_ERROR = "start_error"


class WorkerCrashError(TGSError):
    """A sample kept killing the worker process that ran it."""

    kind = "worker_crash"


# --------------------------------------------------------------------------- the actor


class StageActor:
    """A Ray Data callable class: builds the stage worker once, then processes one batch per call.

    A row is ``{"id": batch id, "batch": list of sample descriptors}``; the answer is
    ``{"id", "outcomes": (mode, outcomes, fast-path counts)}`` (Python objects, carried by
    Ray's own serialisation: tgs deserialises nothing itself): the counts of
    :mod:`tgs.fast_paths` taken in this process for the batch (and, with the first batch,
    while loading), merged into the driver's ledger, so a Ray run's manifest holds them as a
    local run's does. A failure to build the worker is kept and answered (as
    ``("start_error", error, counts)``), not raised, so the driver stops the run with the real
    error (e.g. missing weights) instead of retrying a dead actor.
    """

    def __init__(self, factory: WorkerFactory, num_threads: int, ledger: Any, max_attempts: int) -> None:
        self._ledger, self._max_attempts = ledger, max_attempts
        self._error: SampleError | None = None
        with fast_paths.counting() as loading:  # e.g. a compile fallback decided while loading
            try:
                self._worker = factory()
            except Exception as exc:  # answered by __call__; the driver stops the run with it
                logger.exception("the stage worker could not start")
                self._error = portable_error(exc)
        self._unsent: Mapping[str, Any] = loading.as_record()
        torch = sys.modules.get("torch")  # a stage without torch does not pay for importing it
        if torch is not None:
            torch.set_num_threads(max(1, num_threads))

    def __call__(self, rows: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        ids, answers = [], []
        for batch_id, payload in zip(rows["id"], rows["batch"]):
            with fast_paths.counting() as counts:
                counts.merge(self._unsent)
                self._unsent = {}
                if self._error is not None:
                    mode, outcomes = _START_ERROR, self._error
                else:
                    mode, outcomes = self._process(int(batch_id), list(payload))
            answer = (mode, outcomes, counts.as_record())
            ids.append(int(batch_id))
            answers.append(answer)
        out = np.empty(len(answers), dtype=object)
        out[:] = answers
        return {"id": np.asarray(ids, dtype=np.int64), "outcomes": out}

    def _process(self, batch_id: int, batch: list[Any]) -> tuple[str, list[Outcome]]:
        """("batch" or "alone", one portable outcome per item).

        The ledger counts the deaths of the workers that ran this batch (Ray restarts the
        actor and retries the task). Below ``max_attempts`` the batch runs whole; from
        then on its items run one at a time, and an item whose worker died while running
        it alone is answered with a :class:`WorkerCrashError` instead of being run again.
        """
        import ray

        key = str(batch_id)
        deaths = ray.get(self._ledger.start.remote(key))  # recorded before a crash can hide it
        if deaths < self._max_attempts:
            outcomes = [_portable(o) for o in _run_batch(self._worker.process, batch)]
            self._ledger.finish.remote(key)
            return "batch", outcomes
        outcomes = []
        for position, item in enumerate(batch):
            item_key = f"{batch_id}/{position}"
            alone = ray.get(self._ledger.start.remote(item_key))
            if alone:
                tries = self._max_attempts + alone  # in its batch, then alone
                outcomes.append(portable_error(WorkerCrashError(
                    f"the worker process died {tries} times while processing this sample; "
                    "it may be killed for memory or crash in native code",
                    fix="rerun to retry it; see the worker logs under /tmp/ray/session_latest/logs",
                )))
            else:
                outcomes.extend(_portable(o) for o in _run_batch(self._worker.process, [item]))
            self._ledger.finish.remote(item_key)
        return "alone", outcomes


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


class _LedgerActor:
    """Counts, per batch (and per sample run alone), the workers that died running it.

    ``start(key)`` returns how many earlier starts of ``key`` never finished: each one is
    a worker that died while running it (Ray then restarts the actor and retries the task).
    """

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def start(self, key: str) -> int:
        deaths = self._open.get(key, 0)
        self._open[key] = deaths + 1
        return deaths

    def finish(self, key: str) -> None:
        self._open.pop(key, None)


def _ledger_class() -> Any:
    import ray

    return ray.remote(num_cpus=0)(_LedgerActor)


# --------------------------------------------------------------------------- the executor


@dataclass
class RayStats:
    """What the last :meth:`RayExecutor.map` did besides processing: for logs and tests.

    workers: actors in the pool; retried_batches: batches that used all their tries and
    were split into single samples; crashed_samples: samples recorded as ``worker_crash``.
    """

    workers: int = 0
    retried_batches: int = 0
    crashed_samples: int = 0


class RayExecutor:
    """Maps batches over a Ray Data actor pool; see the module docstring.

    address: None (start a local Ray instance), "auto", "HOST:PORT" or "ray://HOST:PORT".
    workers: actors in the pool (None: as many as the cluster resources allow).
    resources: per actor, Ray option names (``num_gpus``, ``num_cpus``) or custom resource
        names -> amounts; None: ``{"num_gpus": 1, "num_cpus": 1}`` on a cluster with GPUs,
        else ``{"num_cpus": 1}``. Each actor runs torch with ``num_cpus`` threads.
    max_in_flight: batches queued on one actor at a time (>= 2 keeps it busy while the
        driver commits); Ray Data's back-pressure holds the rest back.
    max_attempts: tries of a batch whose worker dies (then its samples get one try alone).
    runtime_env: Ray runtime environment (e.g. ``{"env_vars": {"HF_HOME": ...}}``).
    init_options: further ``ray.init`` arguments (e.g. ``num_cpus`` of a local instance).
    log_level: the level of Ray's own log lines (``ray.init(logging_level=...)`` and Ray
        Data's); above WARNING, Ray Data's progress bars and execution reports are off too.
        The CLI passes its third-party level (ERROR unless ``-v``).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        resources: Mapping[str, float] | None = None,
        max_in_flight: int = 2,
        max_attempts: int = 2,
        runtime_env: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        log_level: int = logging.INFO,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers: expected a positive integer, got {workers}")
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight: expected >= 1, got {max_in_flight}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts: expected >= 1, got {max_attempts}")
        for key, amount in (resources or {}).items():
            if amount < 0:
                raise ValueError(f"resources: {key} must be >= 0, got {amount}")
        check_ray_available()
        self.address = address
        self.workers = workers
        self.resources = dict(resources) if resources else None
        self.max_in_flight = max_in_flight
        self.max_attempts = max_attempts
        self.runtime_env = dict(runtime_env) if runtime_env else None
        self.init_options = dict(init_options or {})
        self.log_level = log_level
        self.stats = RayStats()
        self._started_ray = False

    # ----------------------------------------------------------------- cluster
    def _connect(self) -> None:
        import ray

        if ray.is_initialized():
            return
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": self.log_level, **self.init_options}
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

    def _plan(self) -> tuple[int, dict[str, float]]:
        """(number of actors, resources per actor) for the cluster as it is now."""
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
            have = ", ".join(f"{k}={v:g}" for k, v in sorted(cluster.items())
                             if not k.startswith(("node:", "memory", "object_store")))
            raise RunError(
                f"the Ray cluster cannot hold {workers or 'any'} worker(s) needing {shown} each (it has {have})",
                fix="lower --workers or --resources-per-worker (e.g. gpu=0.5 shares a GPU), or add nodes",
            )
        per_worker.setdefault("num_cpus", 0.0 if per_worker.get("num_gpus") else 1.0)
        return workers, per_worker

    # ----------------------------------------------------------------- map
    def map(self, factory: WorkerFactory, batches: Sequence[list[T]]) -> Iterator[tuple[list[T], list[Outcome]]]:
        """Yield (batch, outcomes) for every batch, in the order they finish."""
        pending = {index: list(batch) for index, batch in enumerate(batches)}
        self.stats = RayStats()
        if not pending:
            return
        import ray

        self._connect()
        count, per_worker = self._plan()
        self.stats.workers = min(count, len(pending))
        logger.info("ray: %d worker(s), %s each, %d batch(es)", self.stats.workers, per_worker, len(pending))
        rows = [{"id": index, "batch": batch} for index, batch in pending.items()]
        num_cpus = per_worker.get("num_cpus", 1.0)
        custom = {k: v for k, v in per_worker.items() if k not in _RAY_NAMES}
        ledger = _ledger_class().remote()
        try:
            with _data_context(self.log_level):
                dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
                dataset = dataset.map_batches(
                    StageActor,
                    fn_constructor_args=(factory, max(1, int(num_cpus or 1)), ledger, self.max_attempts),
                    batch_size=1,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(
                        size=self.stats.workers, max_tasks_in_flight_per_actor=self.max_in_flight
                    ),
                    num_cpus=num_cpus,
                    num_gpus=per_worker.get("num_gpus", 0.0),
                    resources=custom or None,
                    # Ray Data's defaults for an actor pool restart a dead actor and retry its
                    # tasks without limit; StageActor bounds the tries through the ledger.
                )
                for answer in dataset.iter_batches(batch_size=1, batch_format="numpy", prefetch_batches=0):
                    for batch_id, payload in zip(answer["id"], answer["outcomes"]):
                        batch = pending.pop(int(batch_id), None)
                        if batch is None:  # an answer delivered twice (a retried task): keep the first
                            logger.warning("batch %d came back twice; the second answer is ignored", int(batch_id))
                            continue
                        yield batch, self._outcomes(tuple(payload))
        finally:
            ray.kill(ledger)
        if pending:
            raise RuntimeError(f"Ray Data returned no answer for {len(pending)} batch(es)")

    def _outcomes(self, answer: tuple[Any, ...]) -> list[Outcome]:
        mode, outcomes, counts = answer
        fast_paths.current().merge(counts)  # the driver's ledger: the run's manifest
        if mode == _START_ERROR:
            raise SampleError(f"a Ray worker could not start: {outcomes}", outcomes.kind, outcomes.original_type)
        if mode == "alone":
            self.stats.retried_batches += 1
            self.stats.crashed_samples += sum(
                isinstance(o, SampleError) and o.kind == WorkerCrashError.kind for o in outcomes
            )
        return list(outcomes)

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


@contextlib.contextmanager
def _data_context(log_level: int) -> Iterator[Any]:
    """Ray Data's context for one execution, restored afterwards: its loggers at ``log_level``,
    and above WARNING no progress bars or execution reports (the CLI shows its own bar;
    Ray's logs stay in its session folder)."""
    from ray.data import DataContext

    context = DataContext.get_current()
    saved = {name: getattr(context, name) for name in _QUIET}
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    try:
        data_logger.setLevel(log_level)
        if log_level > logging.WARNING:
            for name, value in _QUIET.items():
                setattr(context, name, value)
        yield context
    finally:
        data_logger.setLevel(saved_level)
        for name, value in saved.items():
            setattr(context, name, value)


_QUIET = {
    "enable_progress_bars": False,
    "print_on_execution_start": False,
    "enable_auto_log_stats": False,
    "verbose_stats_logs": False,
}
