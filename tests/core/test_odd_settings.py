"""Settings that used to end in a traceback or be ignored: each is a SettingsError (a TGSError,
so the CLI prints one line) that names the fix, raised before any work."""

from __future__ import annotations

import pytest
import torch

from tgs.core.settings import Settings
from tgs.devices import resolve_device, resolve_dtype
from tgs.errors import DataError, MissingWeightsError, SettingsError, TGSError
from tgs.models import TINY
from tgs.models.registry import require_models
from tgs.paths import check_output_folder
from tgs.think.registry import build_thinker


@pytest.mark.parametrize("name", ["foo", "gpu0", "cuda:x"])
def test_unknown_device_is_a_settings_error(name):
    with pytest.raises(SettingsError) as info:
        resolve_device(name)
    assert isinstance(info.value, TGSError) and info.value.fix


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_settings_error():
    with pytest.raises(SettingsError, match="CUDA is not available"):
        resolve_device("cuda")


def test_unknown_dtype_is_a_settings_error():
    with pytest.raises(SettingsError):
        resolve_dtype("fp8")


def test_unknown_thinker_option_is_a_settings_error():
    with pytest.raises(SettingsError, match="foo"):
        build_thinker("direct", foo=1)


@pytest.mark.parametrize(("role", "key"), [("grounding_dino", "grounding_dino"), ("sam2", "sam2"),
                                           ("thinker", "ref_thinker")])  # fmt: skip
def test_a_source_with_the_tiny_set_is_refused_not_ignored(role, key, tmp_path):
    """``--models tiny`` makes "tiny" every role's source; another source given with it would be
    ignored, so it is refused. The tiny model is a source, the one way the registry is asked for it."""
    with pytest.raises(ValueError, match="tiny"):
        Settings.from_options(models="tiny", **{role: str(tmp_path / "nonexistent")})
    assert Settings.from_options(models="tiny").source(role) == TINY
    require_models([(key, TINY)])  # the tiny model is always there: built on first use
    with pytest.raises(MissingWeightsError, match="nonexistent"):
        require_models([(key, str(tmp_path / "nonexistent"))])


def test_output_folder_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(SettingsError, match="existing file"):
        check_output_folder(target, [], ("overlay.mp4",))


@pytest.mark.parametrize("inside", ["overlay.mp4", "result.json", "masks/00000.png"])
def test_an_input_is_never_an_output(tmp_path, inside):
    out = tmp_path / "out"
    video = out / inside
    video.parent.mkdir(parents=True)
    video.write_bytes(b"video")
    with pytest.raises(SettingsError, match="overwritten"):
        check_output_folder(out, [video], ("overlay.mp4", "masks", "result.json"))
    # the same file reached through another spelling of the folder
    with pytest.raises(SettingsError):
        check_output_folder(tmp_path / "out" / ".." / "out", [video], ("overlay.mp4", "masks", "result.json"))
    assert video.read_bytes() == b"video"
    check_output_folder(tmp_path / "elsewhere", [video], ("overlay.mp4", "masks", "result.json"))


def test_fix_text_is_not_repeated_when_an_error_wraps_another():
    inner = DataError("uid 'x' is bad", fix="use <vid>_<class>_<k>")
    outer = DataError(f"meta.csv: line 2: {inner}", fix=inner.fix)
    assert str(outer).count("Fix:") == 1
    assert inner.message == "uid 'x' is bad"
