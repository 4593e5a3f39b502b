"""Small benchmark folders in each benchmark's real file format, written by the engine/CLI tests.

Every ``write_*`` function lays its benchmark out under ``root`` exactly where the registry
(LLaVA-1.5's ``playground/data/eval`` layout) looks for it, with a few tiny images, and returns the
number of questions. ``write_all`` writes every one of them.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

from PIL import Image

SHORT = "Answer the question using a single word or phrase."
LETTER = "Answer with the option's letter from the given choices directly."


def _image(i: int, size=(24, 20)) -> Image.Image:
    return Image.new("RGB", size, ((40 * i) % 256, (90 + 30 * i) % 256, (200 - 20 * i) % 256))


def save_image(path: Path, i: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(i).save(path)
    return path


def png_base64(i: int) -> str:
    buf = io.BytesIO()
    _image(i).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def write_textvqa(root: Path, n_images: int = 5) -> int:
    """TextVQA: image ids as question ids; image 0 carries two questions (a repeated question_id)."""
    folder = root / "textvqa"
    questions, annotations = [], []
    for i in range(n_images):
        image_id = f"{i:016x}"
        save_image(folder / "train_images" / f"{image_id}.jpg", i)
        asked = [f"what number is shown {i}?"] + (["what colour is the sign?"] if i == 0 else [])
        for q in asked:
            questions.append({
                "question_id": image_id, "image": f"{image_id}.jpg", "category": "default",
                "text": f"{q}\nReference OCR token: STOP, {i}\n{SHORT}",
            })
            annotations.append({"image_id": image_id, "question": q, "answers": [str(i)] * 8 + ["stop"] * 2})
    _jsonl(folder / "llava_textvqa_val_v051_ocr.jsonl", questions)
    (folder / "TextVQA_0.5.1_val.json").write_text(json.dumps({"dataset_name": "synthetic", "data": annotations}))
    return len(questions)


def write_mmbench(root: Path, folder: str = "mmbench", split: str = "mmbench_dev_20230712", n: int = 2) -> int:
    """MMBench TSV with base64 PNG images; every question has one circular copy (index + 1e6)."""
    header = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
              "l2-category", "comment", "split"]
    rows = []
    for i in range(n):
        options = ["cat", "dog", "bird", "fish"]
        rows.append([str(i), f"What animal is {i}?", "nan" if i else "Look closely.", *options, "A",
                     "image_topic", png_base64(i), "synthetic", "coarse_perception", "nan", "dev"])
        rotated = options[1:] + options[:1]
        rows.append([str(1_000_000 + i), f"What animal is {i}?", "nan" if i else "Look closely.", *rotated, "D",
                     "image_topic", png_base64(i), "synthetic", "coarse_perception", "nan", "dev"])
    path = root / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
    return len(rows)


def write_pope(root: Path, per_split: int = 2) -> int:
    folder = root / "pope"
    questions, qid = [], 0
    for split in ("adversarial", "popular", "random"):
        labels = []
        for j in range(per_split):
            name = f"COCO_val2014_{qid:012d}.jpg"
            save_image(folder / "val2014" / name, qid)
            text = f"Is there a {'dog' if j % 2 else 'cat'} in the image?"
            questions.append({"question_id": qid, "image": name, "text": f"{text}\n{SHORT}", "category": split})
            labels.append({"question_id": qid, "image": name, "text": text, "label": "yes" if j % 2 else "no"})
            qid += 1
        _jsonl(folder / "coco" / f"coco_pope_{split}.json", labels)
    _jsonl(folder / "llava_pope_test.jsonl", questions)
    return len(questions)


def write_scienceqa(root: Path, n: int = 4) -> int:
    """ScienceQA: problem ``n - 1`` has no image (a text-only question)."""
    folder = root / "scienceqa"
    records, problems = [], {}
    for i in range(1, n + 1):
        pid = str(i)
        has_image = i < n
        value = f"Which is heavier {i}?\nA. stone\nB. feather"
        record = {"id": pid, "conversations": [{"from": "human", "value": ("<image>\n" if has_image else "") + value},
                                               {"from": "gpt", "value": "A"}]}
        if has_image:
            record["image"] = f"{pid}/image.png"
            save_image(folder / "images" / "test" / pid / "image.png", i)
        records.append(record)
        problems[pid] = {"question": f"Which is heavier {i}?", "choices": ["stone", "feather"], "answer": 0,
                         "image": "image.png" if has_image else None, "split": "test"}
    (folder / "images" / "test").mkdir(parents=True, exist_ok=True)
    (folder / "llava_test_CQM-A.json").write_text(json.dumps(records))
    (folder / "problems.json").write_text(json.dumps(problems))
    (folder / "pid_splits.json").write_text(json.dumps({"test": list(problems)}))
    return n


def write_seed(root: Path, n: int = 4) -> int:
    folder = root / "seed_bench"
    questions, annotation = [], []
    for i in range(n):
        qid = 101 + i
        save_image(folder / "SEED-Bench-image" / f"{qid}.jpg", i)
        questions.append({"question_id": qid, "image": f"SEED-Bench-image/{qid}.jpg", "category": "Scene Understanding",
                          "text": f"Question {qid}?\nA. a\nB. b\nC. c\nD. d\n{LETTER}"})
        annotation.append({"question_id": str(qid), "question_type_id": 1, "data_type": "image", "answer": "A",
                           "question": f"Question {qid}?", "data_id": f"{qid}.jpg"})
    _jsonl(folder / "llava-seed-bench.jsonl", questions)
    (folder / "SEED-Bench.json").write_text(json.dumps({"question_type": {"Scene Understanding": 1},
                                                        "questions": annotation}))
    return n


def write_vizwiz(root: Path, n: int = 3) -> int:
    folder = root / "vizwiz"
    questions = []
    for i in range(n):
        name = f"VizWiz_test_{i:08d}.jpg"
        save_image(folder / "test" / name, i)
        questions.append({"question_id": i, "image": name,
                          "text": f"What is this {i}?\nWhen the provided information is insufficient, respond with "
                                  f"'Unanswerable'.\n{SHORT}"})
    _jsonl(folder / "llava_test.jsonl", questions)
    return n


WRITERS = {
    "textvqa": write_textvqa,
    "mmbench_en": write_mmbench,
    "pope": write_pope,
    "scienceqa": write_scienceqa,
    "seed": write_seed,
    "vizwiz": write_vizwiz,
}


def write_all(root: Path) -> dict[str, int]:
    """Every benchmark above under ``root``; returns ``{benchmark: number of questions}``."""
    return {name: write(root) for name, write in WRITERS.items()}
