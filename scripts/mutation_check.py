"""Mutation check: break an optimisation or a numeric detail on purpose; a named test must fail.

A test that still passes when its feature is broken checks nothing (a shared path that
quietly falls back to the plain one makes "shared == plain" compare the plain path with
itself). Each mutation below patches the code *from outside*: the script writes a tiny pytest
plugin that monkeypatches the target when pytest loads it (``pytest -p <plugin>``), runs the
named tests, and expects at least one to fail. Production code has no hooks for this.

Mutations: ``ground_many`` (Grounding DINO, backbone shared across captions), ``segment_many``
of the SAM2 image segmenter and of the video segmenter (objects of one propagation), and the
Think prefix cache (``prefill_clip`` / ``prefill_prefix``), each made to raise and to return
a wrong value; the Kaldi fbank's window and mel scale perturbed by 1e-4.

The named tests first run without any mutation: a test that already fails there (e.g. a
tolerance tuned to another CPU) catches nothing, so it is reported apart and not counted.
Prints ``mutation -> caught by <tests> | SURVIVED`` and exits 1 if any mutation survived (or
could not be checked). Not part of ``make test``: each mutation reruns slow tiny-model tests
(13 minutes in all on a 2-core machine); see docs/testing.md.

    python scripts/mutation_check.py                 # every mutation
    python scripts/mutation_check.py --list
    python scripts/mutation_check.py ground_many.raise fbank.window --first   # stop each at its first failure
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SHARING_PAPER = "tests/pipeline/test_sharing_equality.py::test_ground_segment_sharing_on_equals_off[paper]"
SHARING_BEST = "tests/pipeline/test_sharing_equality.py::test_ground_segment_sharing_on_equals_off[best]"
GROUND_MANY = "tests/ground/test_ground_many.py::test_ground_many_equals_ground_per_text"
IMAGE_MANY = "tests/segment/test_sam2_image_many.py::test_segment_many_equals_segment_per_object"
VIDEO_MANY = "tests/segment/test_propagation.py::test_segment_many_equals_segment_per_object"
THINK_SHARING = "tests/think/test_ref_thinker_sharing.py::test_sharing_gives_the_answers_of_the_plain_path"
FBANK = "tests/data/test_fbank.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    patch: str  # Python run when pytest loads the plugin
    tests: tuple[str, ...]


_GROUND_MANY = "from tgs.ground.grounding_dino import GroundingDinoGrounder as cls\nreal = cls.ground_many\n"
_IMAGE = "from tgs.segment.sam2_image import Sam2ImageSegmenter as cls\nreal = cls.segment_many\n"
_VIDEO = "from tgs.segment.sam2_video import Sam2VideoSegmenter as cls\nreal = cls.segment_many\n"
_FLIP_ONE_PIXEL = """
import numpy as np
from tgs.types import Masks

def flipped(masks):
    out = masks.masks.copy()
    out[0, 0, 0] = ~out[0, 0, 0]
    return Masks(out, masks.probs, meta=masks.meta)
"""

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "ground_many.raise", "GroundingDinoGrounder.ground_many raises",
        _GROUND_MANY + "def broken(self, clip, texts):\n    raise RuntimeError('mutation')\ncls.ground_many = broken\n",
        (GROUND_MANY, SHARING_PAPER),
    ),
    Mutation(
        "ground_many.wrong", "ground_many's boxes moved 1 px right",
        _GROUND_MANY + textwrap.dedent("""
            import numpy as np
            from tgs.types import Boxes, FrameBoxes

            def shifted(boxes):
                right = np.float32([1, 0, 1, 0])
                frames = tuple(FrameBoxes(f.xyxy + right, f.scores, f.query_index) if len(f) else f
                               for f in boxes.frames)
                return Boxes(frames, boxes.image_size, boxes.text)

            def wrong(self, clip, texts):
                return [shifted(b) for b in real(self, clip, texts)]

            cls.ground_many = wrong
        """),
        (GROUND_MANY, SHARING_PAPER),
    ),
    Mutation(
        "segment_many.image.raise", "Sam2ImageSegmenter.segment_many raises",
        _IMAGE + "def broken(self, *args, **kwargs):\n    raise RuntimeError('mutation')\ncls.segment_many = broken\n",
        (IMAGE_MANY, SHARING_PAPER),
    ),
    Mutation(
        "segment_many.image.wrong", "Sam2ImageSegmenter.segment_many flips one mask pixel of every object",
        _IMAGE + _FLIP_ONE_PIXEL + textwrap.dedent("""
            def wrong(self, *args, **kwargs):
                return [flipped(m) for m in real(self, *args, **kwargs)]

            cls.segment_many = wrong
        """),
        (IMAGE_MANY, SHARING_PAPER),
    ),
    Mutation(
        "segment_many.video.raise", "Sam2VideoSegmenter.segment_many raises for 2+ objects (segment still works)",
        _VIDEO + textwrap.dedent("""
            def broken(self, clip, boxes_per_object, *args, **kwargs):
                if len(boxes_per_object) > 1:
                    raise RuntimeError('mutation')
                return real(self, clip, boxes_per_object, *args, **kwargs)

            cls.segment_many = broken
        """),
        (VIDEO_MANY, SHARING_BEST),
    ),
    Mutation(
        "segment_many.video.wrong", "Sam2VideoSegmenter.segment_many flips one mask pixel for 2+ objects",
        _VIDEO + _FLIP_ONE_PIXEL + textwrap.dedent("""
            def wrong(self, clip, boxes_per_object, *args, **kwargs):
                out = real(self, clip, boxes_per_object, *args, **kwargs)
                return out if len(boxes_per_object) < 2 else [flipped(m) for m in out]

            cls.segment_many = wrong
        """),
        (VIDEO_MANY, SHARING_BEST),
    ),
    Mutation(
        "think_prefix.raise", "Ref-Thinker's prefix cache (prefill_clip) raises",
        textwrap.dedent("""
            from tgs.think.ref_thinker import thinker

            def broken(*args, **kwargs):
                raise RuntimeError('mutation')

            thinker.prefill_clip = broken
        """),
        (THINK_SHARING, SHARING_PAPER),
    ),
    Mutation(
        "think_prefix.wrong", "the prefilled prefix's values halved (prefill_prefix)",
        textwrap.dedent("""
            from tgs.think.ref_thinker import generation
            from tgs.think.ref_thinker.sharing import SharedPrefix

            real = generation.prefill_prefix

            def wrong(model, prefix_embeds):
                prefix = real(model, prefix_embeds)
                return SharedPrefix(prefix.keys, [v * 0.5 for v in prefix.values], prefix.length)

            generation.prefill_prefix = wrong
        """),
        (THINK_SHARING, SHARING_PAPER),
    ),
    Mutation(
        "fbank.window", "the povey window scaled by 1 + 1e-4",
        textwrap.dedent("""
            from tgs.data import fbank

            real = fbank.povey_window
            fbank.povey_window = lambda size, dtype=None: real(size, dtype) * (1 + 1e-4)
        """),
        (FBANK,),
    ),
    Mutation(
        "fbank.mel", "the mel scale's 700 Hz break moved by 1e-4 (700.07 Hz)",
        textwrap.dedent("""
            import math

            import torch
            from tgs.data import fbank

            def mel(freq):
                if isinstance(freq, torch.Tensor):
                    return 1127.0 * (1.0 + freq / (700.0 * (1 + 1e-4))).log()
                return 1127.0 * math.log(1.0 + freq / (700.0 * (1 + 1e-4)))

            fbank._mel = mel
        """),
        (FBANK,),
    ),
)

_FAILED = re.compile(r"^(?:FAILED|ERROR) (\S+)", re.MULTILINE)
logger = logging.getLogger("mutation_check")


def run_tests(tests: tuple[str, ...], plugin: Path | None, first: bool, python: str) -> tuple[int, set[str], str]:
    """(pytest exit code, failing test ids, output tail) of ``tests``, with the mutation plugin if given."""
    env = dict(os.environ)
    paths = [str(plugin.parent)] if plugin is not None else []
    env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    command = [python, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "--no-header"]
    if plugin is not None:
        command += ["-p", plugin.stem]
    if importlib.util.find_spec("xdist") is not None:
        command += ["-n", "0"]
    if first:
        command.append("-x")
    done = subprocess.run([*command, *tests], cwd=ROOT, env=env, capture_output=True, text=True)
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    return done.returncode, set(_FAILED.findall(done.stdout)), tail


def run_mutation(
    mutation: Mutation, workdir: Path, baseline: set[str], first: bool, python: str
) -> tuple[str, list[str], float]:
    """(status, tests that fail only with the mutation, seconds); status "caught", "SURVIVED" or "ERROR ..."."""
    plugin = workdir / f"tgs_mutation_{mutation.name.replace('.', '_')}.py"
    plugin.write_text(f'"""Mutation {mutation.name}: {mutation.what}."""\n\n' + mutation.patch)
    start = time.perf_counter()
    code, failing, tail = run_tests(mutation.tests, plugin, first, python)
    seconds = time.perf_counter() - start
    caught = sorted(failing - baseline)  # a test that fails without the mutation catches nothing
    if caught and code == 1:
        return "caught", caught, seconds
    if code in (0, 1):
        return "SURVIVED", [], seconds
    logger.error("%s: pytest exit %d\n%s", mutation.name, code, tail)
    return f"ERROR (pytest exit {code})", caught, seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all; --list shows them)")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests, then stop")
    parser.add_argument("--first", action="store_true", help="stop each mutation's tests at the first failure")
    parser.add_argument("--python", default=sys.executable, help="the interpreter that runs pytest")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    known = {m.name: m for m in MUTATIONS}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [known[n] for n in args.names] if args.names else list(MUTATIONS)
    out = sys.stdout
    if args.list:
        for m in chosen:
            out.write(f"{m.name}: {m.what}\n    " + "\n    ".join(m.tests) + "\n")
        return 0
    tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    logger.info("baseline: %d test target(s) without any mutation", len(tests))
    code, baseline, tail = run_tests(tests, None, False, args.python)
    if code not in (0, 1):
        logger.error("the baseline run could not run (pytest exit %d)\n%s", code, tail)
        return 2
    if baseline:
        logger.warning("failing without any mutation (they catch nothing below): %s", ", ".join(sorted(baseline)))
    rows = []
    with tempfile.TemporaryDirectory(prefix="tgs-mutation-") as tmp:
        for mutation in chosen:
            status, caught, seconds = run_mutation(mutation, Path(tmp), baseline, args.first, args.python)
            rows.append((mutation.name, status, caught))
            logger.info("%s: %s (%.0f s) %s", mutation.name, status, seconds, " ".join(caught))
    width = max(len(name) for name, _, _ in rows)
    out.write(f"\n{'mutation':<{width}}  caught by (tests that fail with it and pass without it)\n")
    for name, status, caught in rows:
        out.write(f"{name:<{width}}  {', '.join(caught) if status == 'caught' else status}\n")
    if baseline:
        out.write(f"\nfailing without any mutation (not counted): {', '.join(sorted(baseline))}\n")
    survivors = [name for name, status, _ in rows if status != "caught"]
    if survivors:
        out.write(f"\n{len(survivors)} mutation(s) not caught: {', '.join(survivors)}\n")
        return 1
    out.write(f"\nall {len(rows)} mutations caught\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
