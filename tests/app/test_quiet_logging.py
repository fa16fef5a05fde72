"""Quiet by default: other libraries' log lines and progress bars are hidden unless -v, and
a line that is shown is shown once (huggingface_hub's own handler used to print it a second time)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tgs.cli.console import setup_logging


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    setup_logging(1)  # leave progress bars on and warnings visible for the tests that follow


def _emit() -> None:
    logging.getLogger("huggingface_hub.utils._http").warning("hub retry line")
    logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU.")
    logging.getLogger("transformers.modeling_utils").warning("transformers line")
    logging.getLogger("tgs.something").warning("our own warning")


def test_default_hides_other_libraries_but_not_ours(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(0)
    _emit()
    err = capsys.readouterr().err
    assert "hub retry line" not in err and "Setting accelerator" not in err and "transformers line" not in err
    assert err.count("our own warning") == 1


def test_verbose_shows_each_line_once(capsys: pytest.CaptureFixture[str]) -> None:
    import huggingface_hub.utils.logging as hub_logging

    hub_logging.get_logger()  # its own stderr handler exists (it did print every line twice)
    setup_logging(1)
    logging.getLogger("huggingface_hub.utils._http").warning("hub retry line")
    logging.getLogger("tgs.something").warning("our own warning")
    err = capsys.readouterr().err
    for line in ("hub retry line", "our own warning"):
        assert err.count(line) == 1, err


def test_progress_bars_of_other_libraries_off_by_default() -> None:
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as tf_logging

    setup_logging(0)
    assert are_progress_bars_disabled() and not tf_logging.is_progress_bar_enabled()
    setup_logging(1)
    assert not are_progress_bars_disabled() and tf_logging.is_progress_bar_enabled()
