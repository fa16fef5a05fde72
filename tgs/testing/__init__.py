"""Test and benchmark helpers: tiny random models built offline, synthetic inputs.

Modules (import the one you need; nothing heavy is imported here):
- tgs.testing.tiny_vision: tiny / full-size random Grounding DINO and SAM2 (image, video).
"""
