"""The Segment stage: one box per frame -> masks (per-frame SAM2, or SAM2 video propagation)."""

from tgs.segment.sam2_image import Sam2ImageSegmenter
from tgs.segment.sam2_video import Sam2VideoSegmenter

__all__ = ["Sam2ImageSegmenter", "Sam2VideoSegmenter"]
