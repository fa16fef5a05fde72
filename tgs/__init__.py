"""TGS: Think-Ground-Segment for referring audio-visual segmentation.

``import tgs`` stays light: heavy parts (transformers models, Ray, Gradio) are imported
only by the modules that use them.
"""

from tgs.types import Boxes, Clip, FrameBoxes, Masks, ParseStatus, Query, Thought

__version__ = "0.1.0"

__all__ = ["Boxes", "Clip", "FrameBoxes", "Masks", "ParseStatus", "Query", "Thought", "__version__"]
