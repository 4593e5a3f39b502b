"""A detail-dependent synthetic VQA task, generated offline and deterministically with Pillow.

Every scene (``image_size`` x ``image_size``, 128 px by default) has

* **global** content, readable at any resolution: one *big* shape (circle / square / triangle,
  ~40-50 px across at 128 px) in one of six colours, on the left or the right half, on a light
  background of random tint;
* **detail** content in the other half: a grey-outlined *box* (28 px at 128 px) filled with a
  one-pixel pattern -- horizontal lines, vertical lines, a checkerboard, or plain grey of exactly the
  patterns' mean brightness.

The box's corner and side are multiples of 4 px, so the 2x and 4x bilinear downsamples a
low-resolution tower applies (:func:`piip_llava.vision.tower.branch_input`, no antialias, as in the
official code) average every pattern, line for line, into the *same* uniform grey: at 64 or 32 px the
box is still visible but its pattern is gone -- the miniature counterpart of text that a
low-resolution LLaVA cannot read. (Non-integer factors such as 128 -> 48 px do *not* erase it: bilinear
resampling without antialias aliases one-pixel lines into coarse visible beats.) (Earlier drafts used digits,
small shapes and dot counts; towers trained from scratch on a CPU budget did not learn them even at
full resolution and with direct supervision, so they could not tell the towers apart.)

Four question types, one per attribute, all with one-word answers::

    big_color  global  "What color is the big shape?"             red|green|blue|yellow|purple|orange
    big_side   global  "Is the big shape on the left or right?"   left|right
    big_shape  global  "Is the big shape a circle?"               yes|no
    pattern    detail  "What pattern is in the box: ...?"         horizontal|vertical|checkered|plain

Answers are balanced exactly: every attribute of a split is drawn from a shuffled "deck" holding
each value equally often (up to the remainder), so a blind guesser scores chance on every type.

Files written (LLaVA format, image paths relative to ``out_dir``):

* ``stage1.json``: one caption per stage-1 scene, describing the whole scene (``plain`` template);
* ``stage2.json``: each stage-2 scene's questions as one multi-turn conversation;
* ``test.jsonl``: held-out images, one question per line with ``question_type`` and ``scope``;
* ``attributes.json``: every stage-1 and test scene's attributes (for pretraining / probing a tower);
* ``meta.json``: the generator settings and the answer histograms of both splits.

Determinism: everything derives from ``random.Random`` seeded with ``seed`` (stage 1, stage 2 and
test use separate streams and disjoint scenes), Pillow draws without anti-aliasing and no text, and
PNGs are written with fixed settings, so the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (236, 196, 18),
    "purple": (148, 60, 189),
    "orange": (250, 127, 14),
}
BIG_SHAPES = ("circle", "square", "triangle")
SIDES = ("left", "right")
PATTERNS = ("horizontal", "vertical", "checkered", "plain")
YES_NO = ("yes", "no")
INK, PAPER = 41, 255
"""Pattern pixels: lines/checks of ``INK`` on ``PAPER``; "plain" is their exact mean, 148."""
OUTLINE = (120, 120, 120)

QUESTION_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "big_color": ("global", ("What color is the big shape?", "What is the color of the large shape?")),
    "big_side": ("global", ("Is the big shape on the left or right?", "Which side is the big shape on?")),
    "big_shape": ("global", ("Is the big shape a {shape}?", "Is the large shape a {shape}?")),
    "pattern": ("detail", ("What pattern is in the box: horizontal, vertical, checkered or plain?",
                           "Is the box horizontal, vertical, checkered or plain?")),
}
"""question type -> (scope, phrasings). ``{shape}`` is filled per question."""

GLOBAL_TYPES = tuple(k for k, (scope, _) in QUESTION_TYPES.items() if scope == "global")
DETAIL_TYPES = tuple(k for k, (scope, _) in QUESTION_TYPES.items() if scope == "detail")

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))}


@dataclass(frozen=True)
class Scene:
    """Everything a scene's pixels, caption and answers are made from."""

    background: tuple[int, int, int]
    big_shape: str
    big_color: str
    big_side: str
    big_center: tuple[int, int]
    big_radius: int
    pattern: str
    box_xy: tuple[int, int]
    """Top-left pixel of the pattern (multiples of 4); the outline is drawn one pixel outside it."""


@dataclass(frozen=True)
class SyntheticFiles:
    root: Path
    stage1: Path
    stage2: Path
    test: Path
    meta: Path
    image_folder: Path
    num_stage1: int
    num_stage2_conversations: int
    num_stage2_questions: int
    num_test_images: int
    num_test: int


# ------------------------------------------------------------------------------------------ sampling


def _deck(rng: random.Random, values: tuple, n: int) -> list:
    """``n`` values, each of ``values`` equally often (up to the remainder), in random order."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def sample_scenes(rng: random.Random, n: int, image_size: int) -> list[Scene]:
    """``n`` scenes whose attributes are exactly balanced across the list."""
    decks = {
        "big_shape": _deck(rng, BIG_SHAPES, n), "big_color": _deck(rng, tuple(COLORS), n), "big_side": _deck(rng, SIDES, n),
        "pattern": _deck(rng, PATTERNS, n),
    }
    return [_layout(rng, image_size, **{k: v[i] for k, v in decks.items()}) for i in range(n)]


GRID = 4
"""Box corner and side are multiples of this, so 2x and 4x downsamples never straddle its border."""


def box_size(size: int) -> int:
    """The pattern's side in pixels (28 at 128 px)."""
    return max(GRID * round(7 * size / 128), 2 * GRID)


def _layout(rng: random.Random, size: int, **attributes) -> Scene:
    s = size / 128
    background = tuple(rng.randint(200, 245) for _ in range(3))
    left = attributes["big_side"] == "left"
    radius = round(rng.uniform(19, 24) * s)
    cx = round((32 if left else 96) * s + rng.uniform(-5, 5) * s)
    cy = round(64 * s + rng.uniform(-30, 30) * s)
    cy = min(max(cy, radius + 2), size - radius - 3)
    # The box goes anywhere on the grid in the other half, clear of the edges for its outline.
    box = box_size(size)
    half = size // 2
    x0 = half if left else 0
    x = x0 + GRID * rng.randint(1, (half - box) // GRID - 1)
    y = GRID * rng.randint(1, (size - box) // GRID - 1)
    return Scene(background=background, big_center=(cx, cy), big_radius=radius, box_xy=(x, y), **attributes)


# ------------------------------------------------------------------------------------------- drawing


def pattern_pixels(pattern: str, side: int) -> np.ndarray:
    """A ``side`` x ``side`` grey-level block of ``pattern``; every 2 x 2 block of it averages to 148, the grey of "plain"."""
    if pattern not in PATTERNS:
        raise ValueError(f"unknown pattern {pattern!r}; use one of {PATTERNS}.")
    if pattern == "plain":
        return np.full((side, side), (INK + PAPER) // 2, np.uint8)
    rows, cols = np.mgrid[0:side, 0:side]
    ink = {"horizontal": rows % 2 == 0, "vertical": cols % 2 == 0, "checkered": (rows + cols) % 2 == 0}[pattern]
    return np.where(ink, INK, PAPER).astype(np.uint8)


def render(scene: Scene, size: int) -> Image.Image:
    """Draw a scene (no anti-aliasing, no text: pixels do not depend on Pillow's rasteriser or fonts)."""
    image = Image.new("RGB", (size, size), scene.background)
    draw = ImageDraw.Draw(image)
    cx, cy = scene.big_center
    r = scene.big_radius
    fill = COLORS[scene.big_color]
    if scene.big_shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.big_shape == "square":
        h = round(r * 0.88)
        draw.rectangle((cx - h, cy - h, cx + h, cy + h), fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + round(r * 0.8)), (cx + r, cy + round(r * 0.8))], fill=fill)
    side = box_size(size)
    x, y = scene.box_xy
    draw.rectangle((x - 1, y - 1, x + side, y + side), outline=OUTLINE)
    block = pattern_pixels(scene.pattern, side)
    image.paste(Image.fromarray(np.repeat(block[:, :, None], 3, axis=2)), (x, y))
    return image


# ------------------------------------------------------------------------------------ text and answers

_PATTERN_PHRASES = {"horizontal": "horizontal lines", "vertical": "vertical lines", "checkered": "a checkered pattern",
                    "plain": "no pattern"}


def caption(scene: Scene) -> str:
    return (f"{_article(scene.big_color).title()} {scene.big_color} {scene.big_shape} on the {scene.big_side}. "
            f"The box has {_PATTERN_PHRASES[scene.pattern]}.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def questions(scene: Scene, rng: random.Random, yes: bool) -> list[dict]:
    """The scene's questions, one per type: ``{"question_type", "scope", "text", "answer"}`` (answers lower-case)."""
    out = []
    for kind, (scope, phrasings) in QUESTION_TYPES.items():
        text = rng.choice(phrasings)
        if kind == "big_shape":
            asked = scene.big_shape if yes else rng.choice([s for s in BIG_SHAPES if s != scene.big_shape])
            text, answer = text.format(shape=asked), "yes" if yes else "no"
        else:
            answer = getattr(scene, kind)
        out.append({"question_type": kind, "scope": scope, "text": text, "answer": answer})
    return out


def normalize_answer(text: str) -> str:
    """Lower-case, first line, no surrounding punctuation or articles, number words as digits."""
    text = text.strip().splitlines()[0] if text.strip() else ""
    text = text.lower().strip()
    text = re.sub(r"^(the|a|an)\s+", "", text)
    text = text.strip(" .,!?;:\"'")
    return _NUMBER_WORDS.get(text, text)


def _display(answer: str) -> str:
    return answer[:1].upper() + answer[1:]


# ------------------------------------------------------------------------------------------- writing

LABELS: dict[str, tuple[str, ...]] = {"big_color": tuple(COLORS), "big_side": SIDES, "big_shape": BIG_SHAPES, "pattern": PATTERNS}
"""The scene attributes a tower can be pretrained to classify (see ``piip_llava.train.tower_pretraining``)."""
ATTRIBUTES_FILE = "attributes.json"
FORMAT_VERSION = 2
"""Bumped whenever scenes or files change, so an experiment never reuses data of an older generator."""


def scene_labels(scene: Scene) -> dict[str, str]:
    return {name: getattr(scene, name) for name in LABELS}



def _split(rng: random.Random, n: int, size: int) -> tuple[list[Scene], list[list[dict]]]:
    scenes = sample_scenes(rng, n, size)
    yes = _deck(rng, (True, False), n)
    return scenes, [questions(scene, rng, y) for scene, y in zip(scenes, yes)]


def _save_png(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", optimize=False, compress_level=6)


def build(out_dir: Path | str, *, seed: int = 0, stage1_images: int = 1000, stage2_images: int = 300, test_images: int = 60,
          image_size: int = 128, turns_per_conversation: int = len(QUESTION_TYPES)) -> SyntheticFiles:
    """Write images, ``stage1.json``, ``stage2.json``, ``test.jsonl`` and ``meta.json`` under ``out_dir``.

    Stage 1, stage 2 and test use three disjoint sets of scenes, each drawn from its own random stream
    and balanced on its own. Stage 2 shuffles each scene's questions and cuts them into conversations
    of ``turns_per_conversation`` turns (default: one conversation per scene).
    """
    out = Path(out_dir)
    for split in ("stage1", "stage2", "test"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    streams = {split: random.Random(seed * 7919 + k) for k, split in enumerate(("stage1", "stage2", "test"), start=1)}

    stage1 = []
    attributes: dict[str, list[dict]] = {"stage1": [], "test": []}
    scenes, _ = _split(streams["stage1"], stage1_images, image_size)
    for index, scene in enumerate(scenes):
        rel = f"images/stage1/{index:05d}.png"
        _save_png(render(scene, image_size), out / rel)
        stage1.append({"id": f"cap-{index:05d}", "image": rel,
                       "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": caption(scene)}]})
        attributes["stage1"].append({"image": rel, **scene_labels(scene)})

    rng = streams["stage2"]
    scenes, stage2_questions = _split(rng, stage2_images, image_size)
    stage2 = []
    for index, (scene, qa) in enumerate(zip(scenes, stage2_questions)):
        rel = f"images/stage2/{index:05d}.png"
        _save_png(render(scene, image_size), out / rel)
        qa = list(qa)
        rng.shuffle(qa)
        for start in range(0, len(qa), turns_per_conversation):
            turns = []
            for k, item in enumerate(qa[start : start + turns_per_conversation]):
                turns.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + item["text"]})
                turns.append({"from": "gpt", "value": _display(item["answer"])})
            stage2.append({"id": f"vqa-{index:05d}-{start}", "image": rel, "conversations": turns})
    rng.shuffle(stage2)

    scenes, test_questions = _split(streams["test"], test_images, image_size)
    rows = []
    for index, (scene, qa) in enumerate(zip(scenes, test_questions)):
        rel = f"images/test/{index:05d}.png"
        _save_png(render(scene, image_size), out / rel)
        attributes["test"].append({"image": rel, **scene_labels(scene)})
        for item in qa:
            rows.append({"question_id": len(rows), "image": rel, "text": item["text"], "answer": item["answer"],
                         "question_type": item["question_type"], "scope": item["scope"]})

    files = SyntheticFiles(
        root=out, stage1=out / "stage1.json", stage2=out / "stage2.json", test=out / "test.jsonl", meta=out / "meta.json",
        image_folder=out, num_stage1=len(stage1), num_stage2_conversations=len(stage2),
        num_stage2_questions=sum(len(c["conversations"]) // 2 for c in stage2), num_test_images=test_images, num_test=len(rows),
    )
    files.stage1.write_text(json.dumps(stage1))
    files.stage2.write_text(json.dumps(stage2))
    files.test.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (out / ATTRIBUTES_FILE).write_text(json.dumps(attributes))
    meta = {
        "generator": "piip_llava.evidence.synthetic", "format": FORMAT_VERSION, "seed": seed, "image_size": image_size,
        "stage1_images": stage1_images, "stage2_images": stage2_images, "test_images": test_images,
        "stage1_captions": len(stage1), "stage2_conversations": len(stage2), "test_questions": len(rows),
        "turns_per_conversation": turns_per_conversation,
        "question_types": {k: {"scope": scope, "phrasings": list(p)} for k, (scope, p) in QUESTION_TYPES.items()},
        "answer_histogram": {"stage2": answer_histogram(q for qa in stage2_questions for q in qa), "test": answer_histogram(rows)},
    }
    files.meta.write_text(json.dumps(meta, indent=1, sort_keys=True))
    return files


def answer_histogram(items) -> dict[str, dict[str, int]]:
    """``{question_type: {answer: count}}`` of question dicts."""
    out: dict[str, Counter] = {}
    for item in items:
        out.setdefault(item["question_type"], Counter())[item["answer"]] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def files_of(out_dir: Path | str) -> SyntheticFiles:
    """Re-open a directory written by :func:`build`."""
    out = Path(out_dir)
    meta = json.loads((out / "meta.json").read_text())
    stage2 = json.loads((out / "stage2.json").read_text())
    return SyntheticFiles(
        root=out, stage1=out / "stage1.json", stage2=out / "stage2.json", test=out / "test.jsonl", meta=out / "meta.json",
        image_folder=out, num_stage1=meta["stage1_captions"],
        num_stage2_conversations=len(stage2), num_stage2_questions=sum(len(c["conversations"]) // 2 for c in stage2),
        num_test_images=meta["test_images"], num_test=meta["test_questions"],
    )


__all__ = [
    "ATTRIBUTES_FILE",
    "COLORS",
    "DETAIL_TYPES",
    "FORMAT_VERSION",
    "GLOBAL_TYPES",
    "LABELS",
    "PATTERNS",
    "QUESTION_TYPES",
    "Scene",
    "SyntheticFiles",
    "answer_histogram",
    "box_size",
    "build",
    "caption",
    "files_of",
    "normalize_answer",
    "pattern_pixels",
    "render",
    "sample_scenes",
    "scene_labels",
]
