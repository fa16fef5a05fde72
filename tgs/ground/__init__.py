"""The Ground stage: object description -> candidate boxes per frame."""

from tgs.ground.grounding_dino import GroundingDinoGrounder, prepare_caption

__all__ = ["GroundingDinoGrounder", "prepare_caption"]
