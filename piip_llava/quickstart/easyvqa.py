"""easy-vqa (PyPI ``easy-vqa``, MIT) as LLaVA-format training files, built offline and deterministically.

easy-vqa ships 4,000 training and 1,000 test images (64x64 PNG, one coloured shape each) with 38,575 /
9,673 questions about shape, colour and presence ("is there a red shape?"). From it we write:

* stage 1 captions, from each image's metadata: ``<image>`` -> "A teal triangle." (``plain`` template);
* stage 2 instructions: each image's questions as a multi-turn conversation (several answers per
  vision forward, as LLaVA's instruction data does);
* the test questions, one per line, for evaluation on the held-out split.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import PiipLlavaError

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("red", "green", "blue", "black", "gray", "teal", "brown", "yellow")


@dataclass(frozen=True)
class EasyVqaFiles:
    stage1: Path
    stage2: Path
    test: Path
    image_folder: Path
    num_stage1: int
    num_stage2_conversations: int
    num_stage2_questions: int
    num_test: int


def _load():
    try:
        import easy_vqa
    except ImportError as error:
        raise PiipLlavaError("the quickstart data comes from the PyPI package 'easy-vqa'; `pip install easy-vqa`.") from error
    return easy_vqa


def image_attributes(questions: list[str], answers: list[str]) -> tuple[str | None, str | None]:
    """Shape and colour of an image, read off its own question/answer pairs."""
    shape = color = None
    for question, answer in zip(questions, answers):
        words = question.rstrip("?").split()
        if answer in SHAPES:
            shape = answer
        elif answer in COLORS:
            color = answer
        elif answer == "yes" and "not" not in words:
            shape = shape or next((w for w in words if w in SHAPES), None)
            color = color or next((w for w in words if w in COLORS), None)
    return shape, color


def build(out_dir: Path, *, seed: int = 0, turns_per_conversation: int = 4, max_train_images: int | None = None,
          max_test_questions: int | None = None) -> EasyVqaFiles:
    """Write stage1.json, stage2.json and test.jsonl under ``out_dir`` and return their paths."""
    easy_vqa = _load()
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_q, train_a, train_img = easy_vqa.get_train_questions()
    test_q, test_a, test_img = easy_vqa.get_test_questions()
    train_paths = easy_vqa.get_train_image_paths()
    test_paths = easy_vqa.get_test_image_paths()
    root = Path(next(iter(train_paths.values()))).parents[2]  # .../easy_vqa/data

    by_image: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for question, answer, image in zip(train_q, train_a, train_img):
        by_image[image].append((question, answer))
    image_ids = sorted(by_image)
    rng.shuffle(image_ids)
    if max_train_images is not None:
        image_ids = image_ids[:max_train_images]

    stage1, stage2 = [], []
    for image in image_ids:
        pairs = by_image[image]
        rel = str(Path(train_paths[image]).relative_to(root))
        shape, color = image_attributes([q for q, _ in pairs], [a for _, a in pairs])
        if shape and color:
            stage1.append({"id": f"cap-{image}", "image": rel,
                           "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": f"A {color} {shape}."}]})
        rng.shuffle(pairs)
        for start in range(0, len(pairs), turns_per_conversation):
            turns = []
            for k, (question, answer) in enumerate(pairs[start : start + turns_per_conversation]):
                text = question[0].upper() + question[1:]
                turns.append({"from": "human", "value": ("<image>\n" if k == 0 else "") + text})
                turns.append({"from": "gpt", "value": answer[0].upper() + answer[1:]})
            stage2.append({"id": f"vqa-{image}-{start}", "image": rel, "conversations": turns})
    rng.shuffle(stage2)

    test_rows = [
        {"question_id": i, "image": str(Path(test_paths[image]).relative_to(root)), "text": q[0].upper() + q[1:], "answer": a}
        for i, (q, a, image) in enumerate(zip(test_q, test_a, test_img))
    ]
    rng.shuffle(test_rows)
    if max_test_questions is not None:
        test_rows = test_rows[:max_test_questions]

    files = EasyVqaFiles(out_dir / "stage1.json", out_dir / "stage2.json", out_dir / "test.jsonl", root,
                         len(stage1), len(stage2), sum(len(c["conversations"]) // 2 for c in stage2), len(test_rows))
    files.stage1.write_text(json.dumps(stage1))
    files.stage2.write_text(json.dumps(stage2))
    files.test.write_text("".join(json.dumps(row) + "\n" for row in test_rows))
    return files
