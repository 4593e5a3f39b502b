"""A detail-dependent synthetic VQA task, generated offline and deterministically with Pillow.

Every scene (``image_size`` x ``image_size``, 128 px by default) has

* **global** content, readable at any resolution: one *big* shape (circle / square / triangle,
  ~40-50 px across at 128 px) in one of six colours, on the left or the right half, on a light
  background of random tint;
* **detail** content in the other half, only a few pixels large: a white *tag* with a digit
  (glyph ~6 x 8 px), a *small triangle* and a *small square* (~7 px) of independent colours, and
  0-4 *dots* (3 px).

Six question types, one per attribute, all with one-word answers::

    big_color   global  "What color is the big shape?"          red|green|blue|yellow|purple|orange
    big_side    global  "Is the big shape on the left or right?" left|right
    big_shape   global  "Is the big shape a circle?"            yes|no
    digit       detail  "What digit is on the tag?"             0-9
    small_color detail  "What color is the small triangle?"     six colours
    count       detail  "How many dots are there?"              0-4

Answers are balanced exactly: every attribute of a split is drawn from a shuffled "deck" holding
each value equally often (up to the remainder), so a blind guesser scores chance on every type.

Files written (LLaVA format, image paths relative to ``out_dir``):

* ``stage1.json``: one caption per stage-1 scene, describing the whole scene (``plain`` template);
* ``stage2.json``: each stage-2 scene's six questions as one multi-turn conversation;
* ``test.jsonl``: held-out images, one question per line with ``question_type`` and ``scope``;
* ``meta.json``: the generator settings and the answer histograms of both splits.

Determinism: everything derives from ``random.Random`` seeded with ``seed`` (stage 1, stage 2 and
test use separate streams and disjoint scenes), Pillow draws without anti-aliasing except the font, and PNGs are written with
fixed settings, so the same seed on the same Pillow/FreeType gives byte-identical files.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40),
    "green": (44, 160, 44),
    "blue": (31, 90, 220),
    "yellow": (236, 196, 18),
    "purple": (148, 60, 189),
    "orange": (250, 127, 14),
}
BIG_SHAPES = ("circle", "square", "triangle")
SMALL_SHAPES = ("triangle", "square")
SIDES = ("left", "right")
DIGITS = tuple(str(d) for d in range(10))
COUNTS = (0, 1, 2, 3, 4)
YES_NO = ("yes", "no")

QUESTION_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "big_color": ("global", ("What color is the big shape?", "What is the color of the large shape?")),
    "big_side": ("global", ("Is the big shape on the left or right?", "Which side is the big shape on?")),
    "big_shape": ("global", ("Is the big shape a {shape}?", "Is the large shape a {shape}?")),
    "digit": ("detail", ("What digit is on the tag?", "Which number is written on the tag?")),
    "small_color": ("detail", ("What color is the small {shape}?", "What is the color of the small {shape}?")),
    "count": ("detail", ("How many dots are there?", "How many small dots are in the image?")),
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
    digit: str
    triangle_color: str
    square_color: str
    count: int
    tag_xy: tuple[int, int]
    triangle_xy: tuple[int, int]
    square_xy: tuple[int, int]
    dots_xy: tuple[tuple[int, int], ...]


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


def sample_scenes(rng: random.Random, n: int, image_size: int) -> tuple[list[Scene], list[str]]:
    """``n`` scenes whose attributes are exactly balanced across the list, and for each the small shape
    its ``small_color`` question asks about (balanced too, and so is that question's answer)."""
    colors = tuple(COLORS)
    decks = {
        "big_shape": _deck(rng, BIG_SHAPES, n), "big_color": _deck(rng, colors, n), "big_side": _deck(rng, SIDES, n),
        "digit": _deck(rng, DIGITS, n), "count": _deck(rng, COUNTS, n),
    }
    asked, asked_color, other_color = _deck(rng, SMALL_SHAPES, n), _deck(rng, colors, n), _deck(rng, colors, n)
    scenes = []
    for i in range(n):
        first, second = (asked_color[i], other_color[i]) if asked[i] == "triangle" else (other_color[i], asked_color[i])
        scenes.append(_layout(rng, image_size, triangle_color=first, square_color=second, **{k: v[i] for k, v in decks.items()}))
    return scenes, asked


def _layout(rng: random.Random, size: int, **attributes) -> Scene:
    s = size / 128
    background = tuple(rng.randint(200, 245) for _ in range(3))
    left = attributes["big_side"] == "left"
    radius = round(rng.uniform(19, 24) * s)
    cx = round((32 if left else 96) * s + rng.uniform(-5, 5) * s)
    cy = round(64 * s + rng.uniform(-30, 30) * s)
    cy = min(max(cy, radius + 2), size - radius - 3)
    # Details go in the other half: a 2 x 4 grid of 32 px cells, one item per cell, jittered.
    x0 = size // 2 if left else 0
    cell = size // 4
    count = attributes["count"]
    cells = rng.sample(range(8), 3 + count)

    def place(index: int, extent: int) -> tuple[int, int]:
        col, row = divmod(cells[index], 4)
        room = max(cell - extent - 2, 0)
        return x0 + col * cell + 1 + rng.randint(0, room), row * cell + 1 + rng.randint(0, room)

    tag_w, tag_h = _tag_size(size)
    small = _small_size(size)
    return Scene(
        background=background, big_center=(cx, cy), big_radius=radius,
        tag_xy=place(0, max(tag_w, tag_h)), triangle_xy=place(1, small), square_xy=place(2, small),
        dots_xy=tuple(place(3 + k, _dot_size(size)) for k in range(count)), **attributes,
    )


def _tag_size(size: int) -> tuple[int, int]:
    return max(round(11 * size / 128), 7), max(round(13 * size / 128), 9)


def _small_size(size: int) -> int:
    return max(round(7 * size / 128), 4)


def _dot_size(size: int) -> int:
    return max(round(3 * size / 128), 2)


# ------------------------------------------------------------------------------------------- drawing


def _font(size: int) -> ImageFont.ImageFont:
    px = max(round(11 * size / 128), 6)
    try:
        return ImageFont.load_default(size=px)  # Pillow >= 10.1 with FreeType: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font (~11 px)
        return ImageFont.load_default()


def render(scene: Scene, size: int) -> Image.Image:
    """Draw a scene (no anti-aliasing on shapes, so pixels do not depend on Pillow's rasteriser options)."""
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

    tag_w, tag_h = _tag_size(size)
    x, y = scene.tag_xy
    draw.rectangle((x, y, x + tag_w - 1, y + tag_h - 1), fill=(255, 255, 255), outline=(90, 90, 90))
    font = _font(size)
    left, top, right, bottom = draw.textbbox((0, 0), scene.digit, font=font)
    draw.text((x + (tag_w - (right - left)) // 2 - left, y + (tag_h - (bottom - top)) // 2 - top), scene.digit,
              fill=(20, 20, 20), font=font)

    k = _small_size(size)
    x, y = scene.triangle_xy
    draw.polygon([(x + k // 2, y), (x, y + k - 1), (x + k - 1, y + k - 1)], fill=COLORS[scene.triangle_color])
    x, y = scene.square_xy
    draw.rectangle((x, y, x + k - 2, y + k - 2), fill=COLORS[scene.square_color])
    d = _dot_size(size)
    for x, y in scene.dots_xy:
        box = (x, y, x + d - 1, y + d - 1)
        if d <= 3:
            draw.rectangle(box, fill=(35, 35, 35))
        else:
            draw.ellipse(box, fill=(35, 35, 35))
    return image


# ------------------------------------------------------------------------------------ text and answers


def caption(scene: Scene) -> str:
    dots = f"{scene.count} dot" + ("" if scene.count == 1 else "s")
    return (f"{_article(scene.big_color).title()} {scene.big_color} {scene.big_shape} on the {scene.big_side}. Tag {scene.digit}. "
            f"{_article(scene.triangle_color).title()} {scene.triangle_color} triangle, {_article(scene.square_color)} "
            f"{scene.square_color} square, {dots}.")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def questions(scene: Scene, rng: random.Random, yes: bool, small_shape: str) -> list[dict]:
    """The scene's six questions: ``{"question_type", "scope", "text", "answer"}`` (answers lower-case)."""
    out = []
    for kind, (scope, phrasings) in QUESTION_TYPES.items():
        text = rng.choice(phrasings)
        if kind == "big_color":
            answer = scene.big_color
        elif kind == "big_side":
            answer = scene.big_side
        elif kind == "big_shape":
            asked = scene.big_shape if yes else rng.choice([s for s in BIG_SHAPES if s != scene.big_shape])
            text, answer = text.format(shape=asked), "yes" if yes else "no"
        elif kind == "digit":
            answer = scene.digit
        elif kind == "small_color":
            text = text.format(shape=small_shape)
            answer = scene.triangle_color if small_shape == "triangle" else scene.square_color
        else:
            answer = str(scene.count)
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


def _split(rng: random.Random, n: int, size: int) -> tuple[list[Scene], list[list[dict]]]:
    scenes, small = sample_scenes(rng, n, size)
    yes = _deck(rng, (True, False), n)
    return scenes, [questions(scene, rng, y, s) for scene, y, s in zip(scenes, yes, small)]


def _save_png(image: Image.Image, path: Path) -> None:
    image.save(path, format="PNG", optimize=False, compress_level=6)


def build(out_dir: Path | str, *, seed: int = 0, stage1_images: int = 1000, stage2_images: int = 300, test_images: int = 60,
          image_size: int = 128, turns_per_conversation: int = 6) -> SyntheticFiles:
    """Write images, ``stage1.json``, ``stage2.json``, ``test.jsonl`` and ``meta.json`` under ``out_dir``.

    Stage 1, stage 2 and test use three disjoint sets of scenes, each drawn from its own random stream
    and balanced on its own. Stage 2 shuffles each scene's six questions and cuts them into
    conversations of ``turns_per_conversation`` turns (default: one six-turn conversation per scene).
    """
    out = Path(out_dir)
    for split in ("stage1", "stage2", "test"):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
    streams = {split: random.Random(seed * 7919 + k) for k, split in enumerate(("stage1", "stage2", "test"), start=1)}

    stage1 = []
    scenes, _ = _split(streams["stage1"], stage1_images, image_size)
    for index, scene in enumerate(scenes):
        rel = f"images/stage1/{index:05d}.png"
        _save_png(render(scene, image_size), out / rel)
        stage1.append({"id": f"cap-{index:05d}", "image": rel,
                       "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": caption(scene)}]})

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
    meta = {
        "generator": "piip_llava.evidence.synthetic", "seed": seed, "image_size": image_size,
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
    "COLORS", "DETAIL_TYPES", "GLOBAL_TYPES", "QUESTION_TYPES", "Scene", "SyntheticFiles", "answer_histogram", "build",
    "caption", "files_of", "normalize_answer", "render", "sample_scenes",
]
