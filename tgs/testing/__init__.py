"""Test and benchmark helpers: tiny random models built offline, synthetic inputs.

Modules (import the one you need; nothing heavy is imported here):
- tgs.testing.tiny_vision: tiny / full-size random Grounding DINO and SAM2 (image, video).
- tgs.testing.live_streams: live streams served in real time by the ffmpeg command (TCP, UDP, a pipe).
"""
