"""A synthetic benchmark in the exact Ref-AVSBench layout, for tests and demos.

Each video shows 1-3 drawn shapes (circle, square, triangle, ...) in distinct colours on
a gradient background, some moving, each with a known mask; each object emits its own
tone (distinct pitch and timbre, some silent, some louder, starting at different times,
panned by position). Expressions refer to an object by sound ("The object making the
loudest sound."), look ("The red circle.") or position ("The object on the left."), so
every row has one correct answer, recorded in ``synth_info.json``.

Layout written under ``out`` (see tgs.data.benchmark)::

    metadata.csv                                  vid,uid,split,fid,exp (CRLF, like the public CSV)
    media/<vid>/frames/{0..9}.jpg                 one frame per second
    media/<vid>/audio.wav                         48 kHz stereo 16-bit, 10 s
    gt_mask/<vid>/fid_<i>/0000{0..9}.png          grayscale 0/255, object i of the video
    media/null_{c|m}-<vid>/..., media_cross/null_{c|m}-<vid>/audio.wav,
    gt_mask/null_{c|m}-<vid>/fid_0/...            null references (empty masks)
    synth_info.json                               per uid: object name, colour, shape, sounds
    RefThinker_instruction_tuning_set.json        target chains of the train rows (tgs.data.synth_instructions)

Splits: video i is train, val, test_s, test_u for i % 4 = 0, 1, 2, 3; test_u videos use
shapes never used elsewhere (star, diamond), as Ref-AVS's unseen split uses unseen
classes. Null rows (``null_c-<vid>_null_<k>`` / ``null_m-<vid>_null_<k>``, fid 0) come from
every test_s video (split test_n) and from every other train video (split train), like the
public CSV. The real data does not document the letters; here ``null_c`` rows name an
object that is not in the video (audio unchanged) and ``null_m`` rows ask about sound
while the clip's audio is muted. All five splits appear once ``videos >= 4``.

Everything is a function of (seed, video index, size): the same arguments give bitwise
identical files, and video i does not depend on how many videos are generated.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tgs.data.benchmark import HEADER, NUM_FRAMES
from tgs.data.synth_instructions import write_instruction_set
from tgs.errors import SettingsError

__all__ = [
    "AUDIO_SAMPLE_RATE",
    "COLOURS",
    "DEFAULT_SIZE",
    "SEEN_SHAPES",
    "UNSEEN_SHAPES",
    "SynthObject",
    "SynthVideo",
    "generate",
    "make_video",
    "parse_size",
    "render_frame",
    "synth_audio",
    "write_video",
]

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (320, 180)
AUDIO_SAMPLE_RATE = 48000
CLIP_SECONDS = 10.0

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 80, 230),
    "yellow": (235, 215, 40),
    "purple": (150, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 210, 220),
    "white": (245, 245, 245),
}
SEEN_SHAPES = ("circle", "square", "triangle", "hexagon")
UNSEEN_SHAPES = ("star", "diamond")
_PITCHES = (196.0, 262.0, 330.0, 440.0, 587.0, 784.0)
_LOUDNESS = (0.12, 0.25, 0.45)  # distinct levels, so "loudest" is always unique
_SPLIT_CYCLE = ("train", "val", "test_s", "test_u")


@dataclass(frozen=True)
class SynthObject:
    """One drawn, possibly sounding object. Positions are fractions of width / height."""

    name: str  # "<colour>-<shape>", the class in the uid
    colour: str
    shape: str
    fid: int  # index of the object in its video = its gt_mask/<vid>/fid_<fid> folder
    radius: float  # fraction of the frame height
    start: tuple[float, float]  # centre (x, y) at t = 0
    end: tuple[float, float]  # centre at the end of the clip (linear motion)
    pitch_hz: float
    harmonics: int  # timbre: number of harmonics, amplitude 1/h each
    amplitude: float  # 0 = silent
    onset_s: float  # when the sound starts

    @property
    def sounds(self) -> bool:
        return self.amplitude > 0

    @property
    def moves(self) -> bool:
        return self.start != self.end

    def centre(self, t: float, duration: float) -> tuple[float, float]:
        a = min(max(t / duration, 0.0), 1.0) if duration > 0 else 0.0
        return (
            self.start[0] + a * (self.end[0] - self.start[0]),
            self.start[1] + a * (self.end[1] - self.start[1]),
        )


@dataclass(frozen=True)
class SynthVideo:
    vid: str
    split: str
    objects: tuple[SynthObject, ...]
    background: tuple[tuple[int, int, int], tuple[int, int, int]]  # top and bottom colour
    duration: float = CLIP_SECONDS


# ---------------------------------------------------------------------------- scene


def _vid_name(seed: int, index: int) -> str:
    # Real vids look like "<youtube id>_<start ms>_<end ms>"; keep the two underscores.
    return f"syn{seed}-{index:04d}_0_10000"


def make_video(
    seed: int, index: int = 0, *, split: str = "train", unseen: bool = False, duration: float = CLIP_SECONDS
) -> SynthVideo:
    """The scene of video ``index`` for ``seed``: objects, their motion and their sounds."""
    rng = np.random.default_rng([seed, index])
    count = int(rng.integers(1, 4))
    shapes = UNSEEN_SHAPES if unseen else SEEN_SHAPES
    colours = [str(c) for c in rng.choice(list(COLOURS), size=count, replace=False)]
    slots = sorted(int(s) for s in rng.choice(3, size=count, replace=False))
    pitches = [float(p) for p in rng.choice(_PITCHES, size=count, replace=False)]
    sounding = rng.random(count) < 0.7
    if count > 1 and sounding.all() and rng.random() < 0.6:
        sounding[int(rng.integers(count))] = False  # often one silent object
    loud = [float(v) for v in rng.choice(_LOUDNESS, size=count, replace=False)]
    onsets = [float(v) for v in rng.choice(np.arange(0.0, 5.0, 0.5), size=count, replace=False)]
    objects = []
    for i in range(count):
        radius = float(rng.uniform(0.14, 0.2))
        slot_x = (2 * slots[i] + 1) / 6.0
        y0 = float(rng.uniform(0.3, 0.7))
        moving = bool(rng.random() < 0.5)
        x_jitter = float(rng.uniform(-0.03, 0.03))
        if moving:
            y1 = float(np.clip(y0 + rng.uniform(-0.25, 0.25), 0.25, 0.75))
            x1 = slot_x + float(rng.uniform(-0.04, 0.04))
        else:
            y1, x1 = y0, slot_x + x_jitter
        shape = str(rng.choice(shapes))
        objects.append(
            SynthObject(
                name=f"{colours[i]}-{shape}",
                colour=colours[i],
                shape=shape,
                fid=i,
                radius=radius,
                start=(slot_x + x_jitter, y0),
                end=(x1, y1),
                pitch_hz=pitches[i],
                harmonics=int(rng.integers(1, 5)),
                amplitude=loud[i] if sounding[i] else 0.0,
                onset_s=onsets[i],
            )
        )
    top = tuple(int(v) for v in rng.integers(20, 90, size=3))
    bottom = tuple(int(v) for v in rng.integers(60, 140, size=3))
    return SynthVideo(
        vid=_vid_name(seed, index),
        split=split,
        objects=tuple(objects),
        background=(top, bottom),  # type: ignore[arg-type]
        duration=duration,
    )


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]] | None:
    def ring(n: int, radius_at, phase: float) -> list[tuple[float, float]]:
        return [
            (cx + radius_at(k) * math.cos(phase + 2 * math.pi * k / n), cy + radius_at(k) * math.sin(phase + 2 * math.pi * k / n))
            for k in range(n)
        ]

    if shape == "circle":
        return None
    if shape == "square":
        s = r * 0.85
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        return ring(3, lambda k: r, -math.pi / 2)
    if shape == "diamond":
        return ring(4, lambda k: r, -math.pi / 2)
    if shape == "hexagon":
        return ring(6, lambda k: r, 0.0)
    if shape == "star":
        return ring(10, lambda k: r if k % 2 == 0 else 0.45 * r, -math.pi / 2)
    raise ValueError(f"unknown shape {shape!r}")


def _background(video: SynthVideo, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    top, bottom = (np.array(c, np.float64) for c in video.background)
    a = np.linspace(0.0, 1.0, h)[:, None]
    column = np.round(top * (1 - a) + bottom * a).astype(np.uint8)  # [h, 3]
    return np.repeat(column[:, None, :], w, axis=1)


def render_frame(video: SynthVideo, t: float, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], masks bool [K, H, W]) of the scene at time t (s).

    Objects are drawn in fid order; a mask holds the pixels of its object that stay
    visible (later objects occlude earlier ones, though the slot layout keeps them apart).
    """
    from PIL import Image, ImageDraw

    w, h = size
    image = Image.fromarray(_background(video, size))
    draw = ImageDraw.Draw(image)
    masks = np.zeros((len(video.objects), h, w), dtype=bool)
    for obj in video.objects:
        cx, cy = obj.centre(t, video.duration)
        # Radius relative to a 16:9 frame's height, so slots never overlap in narrow frames.
        cx, cy, r = cx * w, cy * h, obj.radius * min(h, w * 9 / 16)
        mask_img = Image.new("L", size, 0)
        mdraw = ImageDraw.Draw(mask_img)
        points = _polygon(obj.shape, cx, cy, r)
        if points is None:
            box = [cx - r, cy - r, cx + r, cy + r]
            draw.ellipse(box, fill=COLOURS[obj.colour])
            mdraw.ellipse(box, fill=255)
        else:
            draw.polygon(points, fill=COLOURS[obj.colour])
            mdraw.polygon(points, fill=255)
        mask = np.asarray(mask_img) > 0
        masks[: obj.fid] &= ~mask
        masks[obj.fid] = mask
    return np.asarray(image), masks


def synth_audio(video: SynthVideo, sample_rate: int = AUDIO_SAMPLE_RATE, *, muted: bool = False) -> np.ndarray:
    """float32 [N, 2] stereo in [-1, 1]: each sounding object's tone from its onset on.

    Panning keeps the mono mix (mean of the channels) equal to 0.75 * amplitude for every
    object, so "louder" means the same thing in mono and stereo.
    """
    n = round(video.duration * sample_rate)
    out = np.zeros((n, 2), dtype=np.float64)
    if muted:
        return out.astype(np.float32)
    t = np.arange(n, dtype=np.float64) / sample_rate
    for obj in video.objects:
        if not obj.sounds:
            continue
        tone = np.zeros(n, dtype=np.float64)
        for harmonic in range(1, obj.harmonics + 1):
            tone += np.sin(2 * np.pi * obj.pitch_hz * harmonic * t) / harmonic
        tone /= np.abs(tone).max()
        ramp = np.clip((t - obj.onset_s) / 0.01, 0.0, 1.0)  # 10 ms fade-in, silent before onset
        x = obj.centre(0.0, video.duration)[0]
        out[:, 0] += obj.amplitude * (1.0 - 0.5 * x) * tone * ramp
        out[:, 1] += obj.amplitude * (0.5 + 0.5 * x) * tone * ramp
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _to_pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(audio.astype(np.float64) * 32767.0).astype(np.int16)


# ---------------------------------------------------------------------------- expressions


def _expressions(video: SynthVideo) -> dict[int, list[tuple[str, str]]]:
    """Per fid, every (kind, expression) that refers to that object and to no other."""
    objs = video.objects
    out: dict[int, list[tuple[str, str]]] = {o.fid: [("look", f"The {o.colour} {o.shape}.")] for o in objs}

    def unique(items, key, best) -> SynthObject | None:
        if not items:
            return None
        target = best(key(o) for o in items)
        hits = [o for o in items if key(o) == target]
        return hits[0] if len(hits) == 1 else None

    for o in objs:
        if sum(p.shape == o.shape for p in objs) == 1 and len(objs) > 1:
            out[o.fid].append(("look", f"The {o.shape}."))
        out[o.fid].append(("look", f"The {o.colour} object."))
    sounding = [o for o in objs if o.sounds]
    silent = [o for o in objs if not o.sounds]
    if len(objs) > 1:
        if sounding and (o := unique(sounding, lambda o: o.amplitude, max)):
            out[o.fid].append(("sound", "The object making the loudest sound."))
        if len(silent) == 1:
            out[silent[0].fid].append(("sound", "The object that makes no sound."))
        if len(sounding) == 1:
            out[sounding[0].fid].append(("sound", "The sounding object."))
        left = min(objs, key=lambda o: o.start[0])
        right = max(objs, key=lambda o: o.start[0])
        out[left.fid].append(("position", "The object on the left."))
        out[right.fid].append(("position", "The object on the right."))
        if len(objs) == 3:
            middle = sorted(objs, key=lambda o: o.start[0])[1]
            out[middle.fid].append(("position", "The object in the middle."))
        moving = [o for o in objs if o.moves]
        if len(moving) == 1:
            out[moving[0].fid].append(("position", "The moving object."))
    if len(sounding) > 1:
        if o := unique(sounding, lambda o: o.amplitude, min):
            out[o.fid].append(("sound", "The object making the quietest sound."))
        if o := unique(sounding, lambda o: o.onset_s, min):
            out[o.fid].append(("sound", "The first object to make a sound."))
        if o := unique(sounding, lambda o: o.pitch_hz, max):
            out[o.fid].append(("sound", "The object making the highest-pitched sound."))
        if o := unique(sounding, lambda o: o.pitch_hz, min):
            out[o.fid].append(("sound", "The object making the lowest-pitched sound."))
    return out


def _null_expressions(video: SynthVideo, kind: str, rng: np.random.Generator) -> list[str]:
    if kind == "m":  # muted audio: nothing makes a sound
        return ["The sounding object.", "The object making the loudest sound."]
    absent = [c for c in COLOURS if c not in {o.colour for o in video.objects}]
    colour = str(rng.choice(absent))
    shape = str(rng.choice(SEEN_SHAPES + UNSEEN_SHAPES))
    return [f"The {colour} {shape}.", f"The {colour} object."]


# ---------------------------------------------------------------------------- writing


def _save_jpeg(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(path, format="JPEG", quality=92)


def _save_mask(path: Path, mask: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path, format="PNG")


def _save_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    sf.write(str(path), _to_pcm16(audio), sample_rate, subtype="PCM_16", format="WAV")


def _write_media(out: Path, video: SynthVideo, size: tuple[int, int]) -> list[np.ndarray]:
    """Frames, audio and masks of one video; returns the frames (for null copies)."""
    folder = out / "media" / video.vid
    (folder / "frames").mkdir(parents=True, exist_ok=True)
    frames = []
    all_masks = []
    for k in range(NUM_FRAMES):
        rgb, masks = render_frame(video, float(k), size)
        _save_jpeg(folder / "frames" / f"{k}.jpg", rgb)
        frames.append(rgb)
        all_masks.append(masks)
    for obj in video.objects:
        mask_dir = out / "gt_mask" / video.vid / f"fid_{obj.fid}"
        mask_dir.mkdir(parents=True, exist_ok=True)
        for k in range(NUM_FRAMES):
            _save_mask(mask_dir / f"{k:05d}.png", all_masks[k][obj.fid])
    _save_wav(folder / "audio.wav", synth_audio(video), AUDIO_SAMPLE_RATE)
    return frames


def _write_null_media(out: Path, video: SynthVideo, folder: str, kind: str, size: tuple[int, int]) -> None:
    src = out / "media" / video.vid
    dst = out / "media" / folder
    shutil.copytree(src / "frames", dst / "frames", dirs_exist_ok=True)
    cross = out / "media_cross" / folder
    cross.mkdir(parents=True, exist_ok=True)
    if kind == "m":
        _save_wav(dst / "audio.wav", synth_audio(video, muted=True), AUDIO_SAMPLE_RATE)
    else:
        shutil.copyfile(src / "audio.wav", dst / "audio.wav")
    shutil.copyfile(dst / "audio.wav", cross / "audio.wav")
    mask_dir = out / "gt_mask" / folder / "fid_0"
    mask_dir.mkdir(parents=True, exist_ok=True)
    empty = np.zeros((size[1], size[0]), dtype=bool)
    for k in range(NUM_FRAMES):
        _save_mask(mask_dir / f"{k:05d}.png", empty)


def _object_info(obj: SynthObject) -> dict:
    info = asdict(obj)
    info["sounds"] = obj.sounds
    info["moves"] = obj.moves
    return info


MIN_SIZE = 32
"""Smallest frame side (pixels) of a synthetic benchmark: room for three objects side by side.
Odd sizes are fine (frames are JPEGs, masks PNGs; only video files need even sizes)."""

MAX_SIDE = 8192
"""Largest frame side (pixels): JPEG itself stops at 65,535, and a frame this wide is already 8K."""

MAX_PIXELS = 3840 * 2160
"""Most pixels per frame (4K UHD): each frame, its masks and its drawing buffers are held in memory
at once (about 100 MB at this size), so the limit is checked before anything is written."""

OUTPUTS = ("metadata.csv", "synth_info.json", "RefThinker_instruction_tuning_set.json", "media", "media_cross", "gt_mask")
"""What :func:`generate` writes under its folder: what ``force`` replaces, and nothing else."""


def check_size(size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) if both sides are in [:data:`MIN_SIZE`, :data:`MAX_SIDE`] and the frame has at most
    :data:`MAX_PIXELS` pixels; SettingsError saying why not."""
    width, height = (int(v) for v in size)
    if width < MIN_SIZE or height < MIN_SIZE:
        raise SettingsError(
            f"size {width}x{height}: a synthetic benchmark needs frames of at least {MIN_SIZE}x{MIN_SIZE} pixels "
            "(three objects must fit side by side)",
            fix=f"use e.g. --size 320x180 (any WIDTHxHEIGHT with both sides >= {MIN_SIZE}, odd sizes included)",
        )
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise SettingsError(
            f"size {width}x{height}: a synthetic benchmark's frames are at most {MAX_SIDE} pixels a side and "
            f"{MAX_PIXELS:,} pixels in all (3840x2160); this one has {width * height:,}",
            fix="use a smaller --size, e.g. --size 1920x1080 (or the default 320x180)",
        )
    return width, height


def check_target(out: Path, *, force: bool = False) -> Path:
    """The folder a benchmark is written into, checked: absent or empty is fine; a file is refused;
    a folder with anything in it is refused unless ``force`` (see :func:`_publish`)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SettingsError(f"{out} is a file, not a folder", path=out, fix="give a new folder name")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SettingsError(
            f"{out} is not empty: writing a benchmark there would mix it with what is there",
            path=out,
            fix="give a new or empty folder, or pass --force to replace a previous synthetic benchmark there",
        )
    return out


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A partial folder beside ``out`` to write the benchmark into; published into ``out`` when the
    block ends without an error (:func:`_publish`), removed otherwise, so a failed or interrupted
    call leaves nothing partial behind and a previous benchmark in ``out`` intact."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield staging
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(staging: Path, out: Path) -> None:
    """Move the finished benchmark in ``staging`` into ``out``: a previous benchmark's :data:`OUTPUTS`
    are removed first (so no old media is left beside the new CSV), any other file is kept."""
    out.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    for name in OUTPUTS:
        if (staging / name).exists():
            os.replace(staging / name, out / name)


def generate(
    out: Path, videos: int, seed: int, size: tuple[int, int] = DEFAULT_SIZE, *, force: bool = False
) -> Path:
    """Write a synthetic benchmark of ``videos`` videos under ``out``; returns metadata.csv.

    ``size`` is (width, height) of frames and masks (each side >= :data:`MIN_SIZE`). ``out``
    must be absent or empty unless ``force`` (see :func:`check_target`). See the module
    docstring for the layout, the splits and the null rows.
    """
    if videos < 1:
        raise ValueError(f"videos: expected >= 1, got {videos}")
    width, height = check_size(size)
    out = check_target(out, force=force)
    with _staged(out) as staging:
        _write_benchmark(staging, videos, seed, (width, height))
    logger.info("wrote a synthetic benchmark of %d videos under %s", videos, out)
    return out / "metadata.csv"


def _write_benchmark(out: Path, videos: int, seed: int, size: tuple[int, int]) -> None:
    """Every file of the benchmark under ``out`` (a partial folder, see :func:`generate`)."""
    width, height = size
    rows: list[tuple[str, str, str, int, str]] = []
    info: dict[str, dict] = {}
    video_info: dict[str, dict] = {}
    null_sources = 0
    for index in range(videos):
        split = _SPLIT_CYCLE[index % 4]
        video = make_video(seed, index, split=split, unseen=split == "test_u")
        _write_media(out, video, size)
        video_info[video.vid] = {"split": split, "objects": [_object_info(o) for o in video.objects]}
        rng = np.random.default_rng([seed, index, 1])
        options = _expressions(video)
        for obj in video.objects:
            candidates = options[obj.fid]
            take = int(rng.integers(1, min(3, len(candidates)) + 1))
            picked = sorted(rng.choice(len(candidates), size=take, replace=False).tolist())
            for k, pick in enumerate(picked, start=1):
                kind, exp = candidates[pick]
                uid = f"{video.vid}_{obj.name}_{k}"
                rows.append((video.vid, uid, split, obj.fid, exp))
                info[uid] = {
                    "vid": video.vid, "folder": video.vid, "split": split, "fid": obj.fid, "exp": exp,
                    "kind": kind, "object": obj.name, "colour": obj.colour, "shape": obj.shape,
                    "sounds": obj.sounds, "is_null": False,
                }
        null_split = {"test_s": "test_n", "train": "train" if index % 8 == 0 else None}.get(split)
        if null_split is None:
            continue
        kind = "c" if null_sources % 2 == 0 else "m"
        null_sources += 1
        folder = f"null_{kind}-{video.vid}"
        _write_null_media(out, video, folder, kind, size)
        for k, exp in enumerate(_null_expressions(video, kind, rng), start=1):
            uid = f"{folder}_null_{k}"
            rows.append((video.vid, uid, null_split, 0, exp))
            info[uid] = {
                "vid": video.vid, "folder": folder, "split": null_split, "fid": 0, "exp": exp,
                "kind": f"null_{kind}", "object": None, "colour": None, "shape": None,
                "sounds": None, "is_null": True,
            }
    meta = out / "metadata.csv"
    with meta.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)  # "\r\n" line ends, like the public CSV
        writer.writerow(HEADER)
        writer.writerows(rows)
    summary = {"seed": seed, "videos": videos, "size": [width, height], "uids": info, "video_objects": video_info}
    (out / "synth_info.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_instruction_set(out, summary)  # RefThinker_instruction_tuning_set.json for the train rows


# ---------------------------------------------------------------------------- video files

_CODECS = {
    ".mp4": ("libx264", "aac"),
    ".mov": ("libx264", "aac"),
    ".m4v": ("libx264", "aac"),
    ".mkv": ("libx264", "aac"),
    ".webm": ("libvpx-vp9", "libopus"),
    ".avi": ("mpeg4", "pcm_s16le"),
}


def write_video(
    path: Path,
    seconds: float,
    fps: float,
    size: tuple[int, int] = DEFAULT_SIZE,
    seed: int = 0,
    with_audio: bool = True,
) -> Path:
    """Encode a synthetic clip (the scene of ``make_video(seed)``) to a video file.

    The container follows the suffix: .mp4/.mov/.m4v/.mkv (H.264 + AAC), .webm (VP9 +
    Opus), .avi (MPEG-4 Part 2 + PCM). Audio is 48 kHz stereo. Width and height must be
    even (yuv420p). Returns ``path``.
    """
    from fractions import Fraction

    import av

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _CODECS:
        raise ValueError(f"unsupported video suffix {suffix!r}; use one of {', '.join(_CODECS)}")
    width, height = size
    if width % 2 or height % 2:
        raise ValueError(f"size {width}x{height}: width and height must be even for yuv420p video")
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive, got {seconds} and {fps}")
    video = make_video(seed, 0, duration=float(seconds))
    vcodec, acodec = _CODECS[suffix]
    rate = Fraction(fps).limit_denominator(1001)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        vstream = container.add_stream(vcodec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        if vcodec == "libx264":
            vstream.options = {"crf": "18", "preset": "veryfast"}
        astream = container.add_stream(acodec, rate=AUDIO_SAMPLE_RATE, layout="stereo") if with_audio else None
        for i in range(math.floor(seconds * fps + 1e-9)):
            rgb, _ = render_frame(video, i / fps, size)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            container.mux(vstream.encode(frame))
        container.mux(vstream.encode(None))
        if astream is not None:
            _encode_audio(container, astream, synth_audio(video))
    return path


def _encode_audio(container, stream, audio: np.ndarray) -> None:
    import av

    fmt = "s16" if stream.codec_context.name.startswith("pcm") else stream.codec_context.format.name
    step = stream.codec_context.frame_size or 1024
    for start in range(0, audio.shape[0], step):
        chunk = audio[start : start + step]
        if fmt.startswith("s16"):
            data = _to_pcm16(chunk).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
        else:
            data = np.ascontiguousarray(chunk.T)
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def parse_size(text: str | Sequence[int]) -> tuple[int, int]:
    """"320x180" -> (320, 180)."""
    if not isinstance(text, str):
        w, h = text
        return int(w), int(h)
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size {text!r}: expected WIDTHxHEIGHT, e.g. 320x180") from None
    return w, h
