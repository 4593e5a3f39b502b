"""Evaluation throughput: answers/second at batch size 1 (LLaVA-1.5's loop) vs batched, same model, same run.

Both settings go through the real engine (:class:`piip_llava.eval.engine.EvalEngine`: image decoding,
left-padded batches, durable JSONL writes) on the same synthetic POPE-style questions, greedy. Prints
both rates, their ratio (goal: >= 5x) and how many answers the two runs agree on (greedy decoding
should make them identical up to floating-point ties).

The model is ``--model`` if given, else the quickstart checkpoint ``outputs/quickstart`` if it exists,
else a tiny random checkpoint built on the spot (``piip_llava.testing.make_tiny_checkpoint``); the
output says which.

    python benchmarks/eval_throughput.py
    python benchmarks/eval_throughput.py --model outputs/quickstart --questions 64 --batch-size 32
    python benchmarks/eval_throughput.py --device cuda --dtype bfloat16 --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER = ROOT / "tests" / "fixtures" / "tokenization" / "tokenizer"
QUICKSTART = Path("outputs/quickstart")
OBJECTS = ["dog", "cat", "person", "car", "cup", "chair", "bottle", "bicycle", "traffic light", "umbrella"]


def make_questions(n: int):
    """POPE-style questions with small in-memory PNG images of varying size and colour."""
    from PIL import Image

    from piip_llava.eval.benchmarks import EvalQuestion

    questions = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (64 + 8 * (i % 5), 48 + 8 * (i % 3)), ((37 * i) % 256, (91 * i) % 256, 120)).save(buf, "PNG")
        obj = OBJECTS[i % len(OBJECTS)]
        extra = " Look carefully at the whole picture." * (i % 3)
        questions.append(EvalQuestion(
            question_id=i, image=buf.getvalue(),
            prompt_text=f"Is there a {obj} in the image?{extra}\nAnswer the question using a single word or phrase.",
        ))
    return questions


def resolve_model(path: str | None, workdir: Path) -> tuple[str, str]:
    if path:
        return path, f"--model {path}"
    if (QUICKSTART / "config.json").is_file():
        return str(QUICKSTART), f"quickstart checkpoint {QUICKSTART}"
    from piip_llava.testing import make_tiny_checkpoint

    tiny = make_tiny_checkpoint(workdir / "tiny-piip", TOKENIZER)
    return str(tiny), "tiny random checkpoint (make_tiny_checkpoint: 2-layer LLaMA, hidden 64, tiny-piip-vit)"


def measure(engine, questions, out: Path) -> tuple[float, list[str]]:
    result = engine.run(questions, out, name="throughput")
    assert result.generated == len(questions), result
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return result.generated / result.seconds, [r["text"] for r in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint folder (default: outputs/quickstart if present, else a tiny one)")
    parser.add_argument("--questions", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None, choices=("auto", "float32", "bfloat16", "float16"))
    parser.add_argument("--json", action="store_true", help="also print the numbers as one JSON line")
    args = parser.parse_args(argv)

    from dataclasses import replace

    from piip_llava.eval.engine import EngineConfig, EvalEngine
    from piip_llava.inference import load_pretrained_model

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model_path, which = resolve_model(args.model, work)
        loaded = load_pretrained_model(model_path, device=args.device, dtype=args.dtype)
        questions = make_questions(args.questions)
        config = EngineConfig(max_new_tokens=args.max_new_tokens, progress=False, num_workers=2)
        warm = EvalEngine(loaded, replace(config, batch_size=args.batch_size))
        warm.run(questions[: args.batch_size], work / "warmup.jsonl", name="warmup")  # allocator / kernel warm-up

        t0 = time.perf_counter()
        single_rate, single = measure(EvalEngine(loaded, replace(config, batch_size=1)), questions, work / "b1.jsonl")
        batched_rate, batched = measure(
            EvalEngine(loaded, replace(config, batch_size=args.batch_size)), questions, work / "bN.jsonl"
        )
        total = time.perf_counter() - t0
        device = str(next(loaded.model.parameters()).device)
        dtype = str(next(loaded.model.parameters()).dtype).replace("torch.", "")

    same = sum(a == b for a, b in zip(single, batched))
    ratio = batched_rate / single_rate
    print(f"model:      {which}")
    print(f"device:     {device} ({dtype}); {args.questions} questions, greedy, max_new_tokens={args.max_new_tokens}")
    print(f"batch 1:    {single_rate:8.2f} answers/s")
    print(f"batch {args.batch_size:<4d} {batched_rate:8.2f} answers/s")
    print(f"speed-up:   {ratio:8.2f}x  (goal >= 5x: {'met' if ratio >= 5 else 'NOT met'})")
    print(f"agreement:  {same}/{len(single)} identical answers (batch 1 vs batch {args.batch_size})")
    print(f"wall time:  {total:.1f} s for both runs")
    if args.json:
        print(json.dumps({
            "model": which, "device": device, "dtype": dtype, "questions": args.questions,
            "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
            "answers_per_s_batch1": single_rate, "answers_per_s_batched": batched_rate, "ratio": ratio,
            "identical": same,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
