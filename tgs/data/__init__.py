"""Benchmarks, media decoding, audio features and synthetic data.

``import tgs.data`` stays light: PyAV, soxr, soundfile and PIL are imported by the
functions that decode media.
"""

from tgs.data.benchmark import (
    NUM_FRAMES,
    SPLITS,
    Benchmark,
    MetaRow,
    Sample,
    media_folder,
    r2_avs_bench,
    read_metadata,
    ref_avs_bench,
)
from tgs.data.media import (
    REF_AVS_SAMPLE_RATE,
    iter_video_frames,
    load_audio,
    load_clip,
    load_frames_dir,
    load_video_frames,
)

__all__ = [
    "NUM_FRAMES",
    "REF_AVS_SAMPLE_RATE",
    "SPLITS",
    "Benchmark",
    "MetaRow",
    "Sample",
    "iter_video_frames",
    "load_audio",
    "load_clip",
    "load_frames_dir",
    "load_video_frames",
    "media_folder",
    "r2_avs_bench",
    "read_metadata",
    "ref_avs_bench",
]
