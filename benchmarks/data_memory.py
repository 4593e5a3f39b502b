"""Memory of the training dataset on a LLaVA-665K-sized data file.

Writes a synthetic ``.json`` with 665,298 LLaVA-format records (the size of ``llava_v1_5_mix665k.json``: a
mix of multi-turn image conversations, short-answer VQA, OCR-VQA and text-only ShareGPT-like records, about
1.5 KB each, ~1 GB), then builds ``LazySupervisedDataset`` over it in a fresh process and prints the resident
memory it added, the peak while indexing, and the time. ``--naive`` also measures ``json.load`` of the same
file (what LLaVA's dataset keeps in memory), in its own process.

    python benchmarks/data_memory.py                # 665,298 records
    python benchmarks/data_memory.py --records 100000 --naive
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenization" / "tokenizer"
WORDS = [
    "the",
    "a",
    "man",
    "woman",
    "dog",
    "cat",
    "bus",
    "street",
    "red",
    "blue",
    "green",
    "table",
    "window",
    "sign",
    "picture",
    "shows",
    "people",
    "two",
    "three",
    "standing",
    "sitting",
    "holding",
    "looking",
    "left",
    "right",
    "near",
    "behind",
    "front",
    "large",
    "small",
    "white",
    "black",
    "wooden",
    "old",
    "new",
]


def _sentence(rng: random.Random, n_words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + "."


def _record(index: int, rng: random.Random) -> dict:
    kind = rng.random()
    if kind < 0.06:  # text-only ShareGPT-like: few long turns
        turns = []
        for _ in range(rng.randint(1, 4)):
            turns += [
                {"from": "human", "value": _sentence(rng, rng.randint(10, 60))},
                {"from": "gpt", "value": " ".join(_sentence(rng, 20) for _ in range(rng.randint(2, 12)))},
            ]
        return {"id": f"sharegpt_{index}", "conversations": turns}
    if kind < 0.30:  # LLaVA-Instruct: detailed multi-turn
        rounds = rng.randint(1, 5)
        turns = []
        for r in range(rounds):
            question = _sentence(rng, rng.randint(6, 15))
            turns += [
                {"from": "human", "value": ("<image>\n" + question) if r == 0 else question},
                {"from": "gpt", "value": " ".join(_sentence(rng, 15) for _ in range(rng.randint(1, 6)))},
            ]
        return {"id": f"{index:012d}", "image": f"coco/train2017/{index:012d}.jpg", "conversations": turns}
    # VQA / OCR-VQA / GQA: many short rounds
    rounds = rng.randint(1, 12)
    turns = []
    for r in range(rounds):
        question = _sentence(rng, rng.randint(4, 10)) + "\nAnswer the question using a single word or phrase."
        turns += [
            {"from": "human", "value": ("<image>\n" + question) if r == 0 else question},
            {"from": "gpt", "value": rng.choice(WORDS).capitalize()},
        ]
    return {"id": f"vqa_{index}", "image": f"gqa/images/{index}.jpg", "conversations": turns}


def write_file(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("[")
        for index in range(n):
            if index:
                handle.write(", ")
            handle.write(json.dumps(_record(index, rng)))
        handle.write("]")


def _rss_mb() -> tuple[float, float]:
    """Current and peak resident set size of this process (Linux /proc), in MB."""
    values = {}
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount = line.split(":")
                values[key] = int(amount.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def measure_dataset(path: str) -> dict:
    import torch  # noqa: F401  (imported before the baseline so its memory is not counted)

    from piip_llava.data import LazySupervisedDataset, SupervisedDataConfig, load_tokenizer

    tokenizer = load_tokenizer(TOKENIZER)
    image_folder = tempfile.mkdtemp()
    before, _ = _rss_mb()
    start = time.perf_counter()
    config = SupervisedDataConfig(
        data_path=path, template="vicuna_v1", num_image_tokens=1024, image_folder=image_folder
    )
    dataset = LazySupervisedDataset(config, tokenizer, image_processor=lambda images, aspect_mode="pad": None)
    seconds = time.perf_counter() - start
    after, peak = _rss_mb()
    modality_lengths = dataset.modality_lengths
    with_lengths, _ = _rss_mb()
    sample = dataset.tokenize_record(len(dataset) // 2)
    os.rmdir(image_folder)
    return {
        "records": len(dataset),
        "index_bytes_mb": dataset.index.nbytes / 2**20,
        "rss_added_mb": after - before,
        "peak_rss_during_indexing_mb": peak - before,
        "rss_added_with_modality_lengths_list_mb": with_lengths - before,
        "index_seconds": seconds,
        "example_tokens": len(sample.input_ids),
        "modality_lengths_checksum": sum(modality_lengths),
    }


def measure_naive(path: str) -> dict:
    before, _ = _rss_mb()
    start = time.perf_counter()
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    seconds = time.perf_counter() - start
    after, peak = _rss_mb()
    return {"records": len(data), "rss_added_mb": after - before, "peak_mb": peak - before, "load_seconds": seconds}


def _in_subprocess(mode: str, path: str) -> dict:
    result = subprocess.run(
        [sys.executable, __file__, "--measure", mode, "--path", path],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=665_298)
    parser.add_argument("--path", help="use/keep this data file instead of a temporary one")
    parser.add_argument("--naive", action="store_true", help="also measure json.load (LLaVA's approach)")
    parser.add_argument("--measure", choices=["dataset", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure_dataset(args.path) if args.measure == "dataset" else measure_naive(args.path)))
        return

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.path) if args.path else Path(tmp) / "synthetic_llava_mix.json"
        if not path.exists():
            start = time.perf_counter()
            write_file(path, args.records)
            print(
                f"wrote {args.records:,} records, {path.stat().st_size / 2**20:,.0f} MB in {time.perf_counter() - start:.0f} s"
            )
        ours = _in_subprocess("dataset", str(path))
        print(
            f"LazySupervisedDataset: {ours['records']:,} records; index arrays {ours['index_bytes_mb']:.1f} MB; "
            f"RSS +{ours['rss_added_mb']:.1f} MB after construction (peak +{ours['peak_rss_during_indexing_mb']:.1f} MB "
            f"while indexing; +{ours['rss_added_with_modality_lengths_list_mb']:.1f} MB with the modality_lengths list); "
            f"indexed in {ours['index_seconds']:.1f} s"
        )
        if args.naive:
            naive = _in_subprocess("naive", str(path))
            print(
                f"json.load (LLaVA): RSS +{naive['rss_added_mb']:.0f} MB (peak +{naive['peak_mb']:.0f} MB), "
                f"{naive['load_seconds']:.1f} s"
            )


if __name__ == "__main__":
    main()
