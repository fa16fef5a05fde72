"""The executor options shared by the stage commands (``--executor``, ``--ray-address``, ...).

Not a command group: the commands declare the options (``EXECUTOR_OPTION`` and friends)
and turn them into an executor with :func:`executor_from_options`.
"""

from __future__ import annotations

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
    "local", "--executor", help="local (in this process) or ray (one model-holding worker per GPU/CPU slot)."
)
RAY_ADDRESS_OPTION = typer.Option(
    None, "--ray-address", help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: start a local one)."
)
WORKERS_OPTION = typer.Option(
    None, "--workers", min=1, help="Ray workers (default: as many as the cluster's GPUs, or CPUs, allow)."
)
RESOURCES_OPTION = typer.Option(
    None, "--resources-per-worker", help="Per Ray worker, e.g. gpu=1 (default), gpu=0.5 (two per GPU), cpu=2."
)


def executor_from_options(
    executor: str, ray_address: str | None, workers: int | None, resources: str | None
) -> Executor:
    """The executor the options ask for; a bad combination is a usage error naming the option."""
    if executor not in EXECUTOR_NAMES:
        raise typer.BadParameter(f"expected one of {', '.join(EXECUTOR_NAMES)}, got {executor!r}",
                                 param_hint="--executor")
    try:
        parsed = parse_resources(resources)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--resources-per-worker") from exc
    try:
        return make_executor(executor, address=ray_address, workers=workers, resources=parsed)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--executor") from exc
