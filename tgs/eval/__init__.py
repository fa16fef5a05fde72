"""Evaluation: J, F and S under the TGS-Agent and the official Ref-AVS protocols.

See ``docs/metrics.md``. Importing this package loads numpy and Pillow only; torch and
OpenCV are imported when a protocol first needs them.
"""

from tgs.eval.evaluate import DEFAULT_SPLITS, PROTOCOLS, evaluate, get_protocol, save_metrics
from tgs.eval.predictions import (
    FolderPredictions,
    MemoryPredictions,
    PredictionSource,
    RunPredictions,
    open_predictions,
    write_prediction,
)
from tgs.eval.protocol import EvalProtocol, SampleScore, is_null_split
from tgs.eval.refavs_protocol import RefAVSProtocol
from tgs.eval.tgs_protocol import TGSProtocol

__all__ = [
    "DEFAULT_SPLITS",
    "PROTOCOLS",
    "EvalProtocol",
    "FolderPredictions",
    "MemoryPredictions",
    "PredictionSource",
    "RefAVSProtocol",
    "RunPredictions",
    "SampleScore",
    "TGSProtocol",
    "evaluate",
    "get_protocol",
    "is_null_split",
    "open_predictions",
    "save_metrics",
    "write_prediction",
]
