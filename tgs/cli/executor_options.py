"""The executor options shared by the stage commands (``--executor``, ``--ray-address``, ...).

Not a command group: the commands declare the options (``EXECUTOR_OPTION`` and friends)
and turn them into an executor with :func:`executor_from_options`.
"""

from __future__ import annotations

import logging

import typer

from tgs.runners.executor import EXECUTOR_NAMES, Executor, make_executor, parse_resources

__all__ = [
    "EXECUTOR_OPTION",
    "RAY_ADDRESS_OPTION",
    "RESOURCES_OPTION",
    "WORKERS_OPTION",
    "executor_from_options",
]

EXECUTOR_OPTION = typer.Option(
    "local", "--executor", help="local (in this process) or ray (Ray Data: one model-holding worker per GPU/CPU slot)."
)
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", "--address", help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: start a local one)."
)
WORKERS_OPTION = typer.Option(
    None, "--workers", min=1, help="Ray workers (default: as many as the cluster's GPUs, or CPUs, allow)."
)
RESOURCES_OPTION = typer.Option(
    None, "--resources-per-worker", help="Per Ray worker, e.g. gpu=1 (default), gpu=0.5 (two per GPU), cpu=2."
)


def executor_from_options(
    executor: str, ray_address: str | None, workers: int | None, resources: str | None, device: str | None = None
) -> Executor:
    """The executor the options ask for; a bad combination is a usage error naming the option.

    With ``--executor ray`` and no ``--resources-per-worker``, ``--device cuda`` gives each
    worker one GPU of its own (Ray sets ``CUDA_VISIBLE_DEVICES``, so "cuda" is that GPU in
    the worker) and ``--device cpu`` one CPU (no GPU held); "auto" leaves the choice to
    the cluster (one GPU per worker when it has GPUs).
    """
    if executor not in EXECUTOR_NAMES:
        raise typer.BadParameter(f"expected one of {', '.join(EXECUTOR_NAMES)}, got {executor!r}",
                                 param_hint="--executor")
    try:
        parsed = parse_resources(resources)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--resources-per-worker") from exc
    options = {}
    if executor == "ray":
        if not parsed:
            parsed = _resources_for_device(device)
        options["runtime_env"] = worker_runtime_env(device)
        # Ray's own lines at the CLI's third-party level (ERROR unless -v), read before Ray is imported
        options["log_level"] = logging.getLogger("ray").getEffectiveLevel()
    try:
        return make_executor(executor, address=ray_address, workers=workers, resources=parsed, **options)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--executor") from exc


def worker_runtime_env(device: str | None) -> dict:
    """Ray runtime environment of a command's workers: each worker process gets the command's
    process-wide settings (``tgs.cli.common.prepare_process``) when Ray starts it."""
    from tgs.cli.common import WORKER_DEVICE_ENV

    return {
        "worker_process_setup_hook": "tgs.cli.common.ray_worker_setup",
        "env_vars": {WORKER_DEVICE_ENV: device or "auto"},
    }


def _resources_for_device(device: str | None) -> dict[str, float]:
    name = (device or "auto").strip().lower()
    if name == "cuda":
        return {"num_gpus": 1.0, "num_cpus": 1.0}
    if name.startswith("cuda:"):
        raise typer.BadParameter(
            f"{device!r} names one GPU; with --executor ray use --device cuda: each worker gets a GPU of its own",
            param_hint="--device",
        )
    if name == "cpu":
        return {"num_cpus": 1.0}
    return {}
