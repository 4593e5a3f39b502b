"""Single-resolution towers vs the parameter-inverted pyramid, in miniature, with the project's own recipe.

The claim under test (arXiv 2501.07783): a pyramid that runs a *large* ViT on a *small* image and a
*small* ViT on the *large* image, with interactions, beats a single-resolution tower at equal or lower
vision compute -- most clearly on detail-dependent questions (TextVQA in the paper). Here the task is
:mod:`piip_llava.evidence.synthetic` (global vs detail question types) and the variants are

====  =====================================================================  ======  ========  ==========
key   tower                                                                  tokens  MACs/(a)  projector
====  =====================================================================  ======  ========  ==========
a     single ViT-192x6 (patch 16) @ 64 px -- "large" model, low resolution       16     1.00  mlp2x_gelu
b     the same ViT @ 128 px -- full resolution, the costly baseline               64     3.98  mlp2x_gelu
c     PIIP: ViT-192x6 @ 32 px (p16) + ViT-128x6 @ 128 px (p32), 2 interactions   16    ~0.91  piip_gn_mlp
d     (c) with ``freeze_interaction_gates``: the gates stay at zero              16    ~0.91  piip_gn_mlp
====  =====================================================================  ======  ========  ==========

(a)'s processor works at 128 px like every other variant's, and its tower downsamples to 64 px
with the bilinear op of the pyramid's lower levels (``VisionTowerConfig.input_size``).

(b) necessarily has 4x the visual tokens (the same patch size on a 4x larger image), as a higher
resolution LLaVA does; (a), (c) and (d) give the LLM the same 16 tokens. (d) still *runs* its
interaction units (so its MACs equal (c)'s), but with the gates frozen at zero they add nothing.

Every run uses the project's training pipeline on the real SmolLM2-135M-Instruct, towers from random
init, in three stages:

0. **tower pretraining** (:mod:`~piip_llava.train.tower_pretraining`, 750 steps of 4, ~15-40 s): the
   tower alone learns to classify the stage-1 scenes' attributes. It stands in for the pretrained
   CLIP/ConvNeXt the official recipe starts from; without it (``tower_pretrain_steps=0``, the
   quickstart's recipe: the tower learns through the frozen LLM in stage 1) every variant stayed at
   chance at this budget -- measured, see the evidence README;
1. ``pretrain`` on the captions (``plain`` template): the projector only, LLM and tower frozen, lr 1e-3;
2. ``finetune`` on the multi-turn QA (``chatml``): LLM (lr 5e-5), tower and projector (lr 5e-4),

both through ``piip_llava.train.run.train``, batch 4, then greedy generation on the held-out
questions, exact match after :func:`~piip_llava.evidence.synthetic.normalize_answer`. The data are
generated once (``data_seed``); ``seeds`` change the towers' and projectors' initialisation and the
data order.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from ..vision.branches import ClipViTBranchConfig
from ..vision.interaction import InteractionConfig
from ..vision.registry import ArchitectureSpec
from ..vision.tower import VisionTowerConfig

LLM_HIDDEN = 576
"""SmolLM2-135M's width: the projector's output size, needed to count its MACs."""
IMAGE_SIZE = 128
MAX_MACS_RATIO = 1.1
"""(c) and (d) may spend at most this multiple of (a)'s vision MACs."""
VARIANT_KEYS = ("a", "b", "c", "d")
RESULTS_VERSION = 2


# --------------------------------------------------------------------------------------------- variants


def _vit(image_size: int, hidden: int, layers: int, heads: int, patch: int, ranges: list[tuple[int, int]] | None = None) -> ClipViTBranchConfig:
    return ClipViTBranchConfig(
        image_size=image_size, interaction_indexes=list(ranges or []), hidden_size=hidden, num_layers=layers,
        num_heads=heads, intermediate_size=4 * hidden, patch_size=patch, pretrained_image_size=image_size,
    )


def large_vit(image_size: int, ranges: list[tuple[int, int]] | None = None) -> ClipViTBranchConfig:
    """The "large" model of the miniature: ViT-192 x 6 layers, 3 heads, 16 px patches (2.8 M parameters)."""
    return _vit(image_size, 192, 6, 3, 16, ranges)


def small_vit(image_size: int, ranges: list[tuple[int, int]] | None = None) -> ClipViTBranchConfig:
    """The "small" model: ViT-128 x 6 layers, 4 heads, 32 px patches (1.2 M parameters), so its grid at
    128 px (4 x 4) is the grid the large model has at 64 px."""
    return _vit(image_size, 128, 6, 4, 32, ranges)


@dataclass(frozen=True)
class Variant:
    key: str
    name: str
    label: str
    description: str
    tower: VisionTowerConfig
    projector_type: str
    freeze_interaction_gates: bool = False

    def spec(self) -> ArchitectureSpec:
        return ArchitectureSpec(self.name, self.tower, self.projector_type, LLM_HIDDEN, "SmolLM2-135M-Instruct", self.description)

    def vision_config(self) -> dict:
        """The ``--vision_config`` JSON of ``piip-llava train``."""
        return {"name": self.name, "description": self.description, "tower": self.tower.to_dict(), "projector_type": self.projector_type}


def variants(image_size: int = IMAGE_SIZE) -> dict[str, Variant]:
    """The four towers of the comparison, for scenes of ``image_size`` px (128 by default)."""
    # 64 and 32 px at 128: integer factors, so the task's one-pixel patterns vanish at both (see synthetic.py).
    low, lower = image_size // 2, image_size // 4
    pyramid = VisionTowerConfig(
        branches=[large_vit(lower, [(0, 2), (3, 5)]), small_vit(image_size, [(0, 2), (3, 5)])], kind="piip",
        interaction=InteractionConfig(deform_num_heads=8),
    )
    return {
        # input_size: (a) downsamples the processed 128 px image itself, with the bilinear op the pyramid's
        # low-resolution branch uses, so (a) and (c) differ in their towers only, not in their resampling.
        "a": Variant("a", f"single-l_{low}", f"(a) single ViT-L @{low}",
                     f"single ViT-192x6 @{low} px (large model, low resolution)",
                     VisionTowerConfig(branches=[large_vit(low)], kind="single", select_layer=-1, input_size=image_size),
                     "mlp2x_gelu"),
        "b": Variant("b", f"single-l_{image_size}", f"(b) single ViT-L @{image_size}",
                     f"single ViT-192x6 @{image_size} px (large model, full resolution: costly)",
                     VisionTowerConfig(branches=[large_vit(image_size)], kind="single", select_layer=-1), "mlp2x_gelu"),
        "c": Variant("c", f"piip-ls_{image_size}-{lower}", f"(c) PIIP L@{lower} + S@{image_size}",
                     f"PIIP: ViT-192x6 @{lower} px + ViT-128x6 @{image_size} px, 2 interactions", pyramid, "piip_gn_mlp"),
        "d": Variant("d", f"piip-ls_{image_size}-{lower}_no-interaction", "(d) PIIP, gates frozen at 0",
                     f"(c) with freeze_interaction_gates: ViT-192x6 @{lower} px + ViT-128x6 @{image_size} px, no interaction",
                     pyramid, "piip_gn_mlp", freeze_interaction_gates=True),
    }


def compute_table(image_size: int = IMAGE_SIZE, keys=VARIANT_KEYS) -> dict[str, dict]:
    """Vision MACs (``piip_llava.flops.count``, paper convention), visual tokens and parameters per variant."""
    from ..flops import count

    table = {}
    for key in keys:
        variant = variants(image_size)[key]
        report = count(variant.spec())
        table[key] = {
            "vision_macs": report.macs_paper, "vision_gmacs": report.macs_paper / 1e9,
            "macs_by_component": report.macs_by_component, "visual_tokens": report.num_visual_tokens,
            "vision_params": report.params["vision_tower"], "projector_params": report.params["projector"],
        }
    return table


def check_budget(table: dict[str, dict], max_ratio: float = MAX_MACS_RATIO) -> dict[str, float]:
    """Ratios of each variant's vision MACs to (a)'s; raises if (c) or (d) exceeds ``max_ratio``."""
    base = table["a"]["vision_macs"] if "a" in table else compute_table(keys=("a",))["a"]["vision_macs"]
    ratios = {k: row["vision_macs"] / base for k, row in table.items()}
    for key in ("c", "d"):
        if key in ratios and ratios[key] > max_ratio:
            raise AssertionError(f"variant ({key}) spends {ratios[key]:.3f}x the vision MACs of (a); the budget is {max_ratio}x.")
    return ratios


# ------------------------------------------------------------------------------------------------ scale


@dataclass(frozen=True)
class Scale:
    stage1_captions: int
    """Stage-1 scenes, one caption each (~15 text tokens: every attribute of the scene in one sample)."""
    stage2_conversations: int
    """Stage-2 scenes, one four-turn QA conversation each."""
    test_images: int
    """Held-out scenes, four questions each (a multiple of 12 balances every answer exactly)."""
    tower_pretrain_steps: int = 750
    """Stage 0 (:mod:`~piip_llava.train.tower_pretraining`): steps of batch ``batch_size`` on the stage-1
    scenes; 0 skips it and trains the tower from random init through the LLM, as the quickstart does."""
    tower_pretrain_lr: float = 1e-3
    batch_size: int = 4
    """As in the quickstart: small batches, many optimizer steps."""
    stage1_lr: float = 1e-3
    """Stage 1: the projector (and the tower too when stage 0 is skipped); the LLM is frozen."""
    stage2_lr: float = 5e-5
    """Stage 2: the LLM (as in the quickstart and LLaVA's stage 2, the LLM is fine-tuned)."""
    stage2_vision_lr: float = 5e-4
    """Stage 2: the tower and the projector."""
    freeze_llm: bool = False
    eval_batch_size: int = 60


SCALES = {
    # Sized from measured wall times on 2 idle cores (bf16): stage 0 15-40 s, stage 1 (250 steps; SmolLM2
    # forward + backward dominates, ~0.3 s a step with 16 visual tokens) ~70 s, stage 2 (75 steps, LLM
    # trained) ~110 s, evaluation ~10 s: ~4 min per 16-token run, more for (b)'s 64 tokens; ~1 h in all.
    "full": Scale(stage1_captions=1000, stage2_conversations=300, test_images=60),
    # Checks the pipeline end to end (one optimizer step per stage); its accuracies mean nothing.
    "ci": Scale(stage1_captions=8, stage2_conversations=8, test_images=5, tower_pretrain_steps=2, eval_batch_size=30),
}


@dataclass(frozen=True)
class ExperimentConfig:
    output_dir: str = "outputs/pyramid_repro"
    scale: str = "full"
    seeds: tuple[int, ...] = (0, 1, 2)
    variants: tuple[str, ...] = VARIANT_KEYS
    data_seed: int = 0
    image_size: int = IMAGE_SIZE
    bf16: bool | None = None
    """None: bf16 autocast where the CPU has native bf16 (as the quickstart does)."""
    resume: bool = True
    """Reuse finished runs recorded in ``results.json`` by an earlier call with the same settings."""
    keep_checkpoints: bool = False
    """Each checkpoint holds the 135 M LLM (~0.5 GB); by default they are deleted after evaluation."""
    llm: str | None = None
    """A local HF folder of the LLM; default: SmolLM2-135M-Instruct via ``smollm2_path()``."""
    overrides: dict = field(default_factory=dict)
    """Fields of :class:`Scale` to override (e.g. ``{"stage1_captions": 500}``)."""

    def __post_init__(self) -> None:
        if self.scale not in SCALES:
            raise ValueError(f"unknown scale {self.scale!r}; use one of {sorted(SCALES)}.")
        unknown = [k for k in self.variants if k not in VARIANT_KEYS]
        if unknown:
            raise ValueError(f"unknown variants {unknown}; use {VARIANT_KEYS}.")
        if not self.seeds or not self.variants:
            raise ValueError("give at least one seed and one variant.")
        unknown = sorted(set(self.overrides) - set(Scale.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown scale overrides {unknown}; known: {sorted(Scale.__dataclass_fields__)}.")

    @property
    def sizes(self) -> Scale:
        return replace(SCALES[self.scale], **self.overrides)

    def fingerprint(self) -> dict:
        """What a finished run must share with this config to be reused."""
        return {"version": RESULTS_VERSION, "scale": asdict(self.sizes), "data_seed": self.data_seed, "image_size": self.image_size,
                "bf16": self._bf16(), "llm": self.llm}

    def _bf16(self) -> bool:
        from ..quickstart.recipe import cpu_has_native_bf16

        return cpu_has_native_bf16() if self.bf16 is None else bool(self.bf16)


# ------------------------------------------------------------------------------------------------ runs


def _training_args(config: ExperimentConfig, out: Path, stage: str, lr: float, seed: int, **extra):
    from ..quickstart.recipe import small_run_training_args

    return small_run_training_args(out, stage, lr, batch_size=config.sizes.batch_size, seed=seed, bf16=config._bf16(),
                                   logging_steps=5, **extra)


def run_one(variant: Variant, seed: int, files, config: ExperimentConfig, llm: Path, macs: dict, log=print) -> dict:
    """Stage 1 + stage 2 + evaluation of one variant and seed; returns the run's record."""
    from ..quickstart.recipe import last_loss
    from ..train.arguments import DataArguments, ModelArguments
    from ..train.run import train

    sizes = config.sizes
    run_dir = Path(config.output_dir) / "runs" / f"{variant.key}_seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    vision_config = run_dir / "vision_config.json"
    vision_config.write_text(json.dumps(variant.vision_config(), indent=1))
    gates = {"freeze_interaction_gates": variant.freeze_interaction_gates}
    started = time.perf_counter()

    stage0, weights, vision = None, None, {"vision_trainable": "all"}
    if sizes.tower_pretrain_steps > 0:
        from ..train.tower_pretraining import PretrainSettings, pretrain_tower

        weights = run_dir / "stage0_tower.safetensors"
        settings = PretrainSettings(steps=sizes.tower_pretrain_steps, batch_size=sizes.batch_size, lr=sizes.tower_pretrain_lr,
                                    bf16=config._bf16(), freeze_gates=variant.freeze_interaction_gates)
        stage0 = pretrain_tower(variant.tower, _labelled(files, "stage1"), weights, settings, seed, test=_labelled(files, "test"))
        log(f"    stage 0: tower probe accuracy {stage0['probe_accuracy']}")
        vision = {}  # a pretrained tower: stage 1 fits the projector only, as in LLaVA
    torch.manual_seed(seed)  # the projector's (and, without stage 0, the tower's) random init
    stage1 = train(
        ModelArguments(llm=str(llm), vision_config=str(vision_config), conversation_template="chatml",
                       vision_tower_weights=str(weights) if weights else None),
        DataArguments(data_path=str(files.stage1), image_folder=str(files.image_folder), template="plain", image_aspect_ratio="square"),
        _training_args(config, run_dir / "stage1", "pretrain", sizes.stage1_lr, seed, **vision, **gates),
    )
    stage1_seconds = time.perf_counter() - started  # stage 0 included
    stage2 = train(
        ModelArguments(model_name_or_path=str(run_dir / "stage1")),
        DataArguments(data_path=str(files.stage2), image_folder=str(files.image_folder), template="chatml", image_aspect_ratio="pad"),
        _training_args(config, run_dir / "stage2", "finetune", sizes.stage2_lr, seed, freeze_llm=sizes.freeze_llm,
                       mm_projector_lr=sizes.stage2_vision_lr, vision_tower_lr=sizes.stage2_vision_lr, **gates),
    )
    stage2_seconds = time.perf_counter() - started - stage1_seconds
    if not config.keep_checkpoints:
        shutil.rmtree(run_dir / "stage1", ignore_errors=True)
        if weights is not None:
            weights.unlink()
    eval_started = time.perf_counter()
    accuracy, examples = evaluate(run_dir / "stage2", files, sizes.eval_batch_size, bf16=config._bf16())
    eval_seconds = time.perf_counter() - eval_started
    gates_after = _gate_norm(run_dir / "stage2") if variant.tower.kind == "piip" else None
    if not config.keep_checkpoints:
        shutil.rmtree(run_dir / "stage2", ignore_errors=True)
    record = {
        "variant": variant.key, "seed": seed, "label": variant.label,
        "vision_gmacs": macs["vision_gmacs"], "visual_tokens": macs["visual_tokens"],
        "accuracy": accuracy,
        "stage0": stage0,
        "final_loss": {"stage1": last_loss(stage1.log_history), "stage2": last_loss(stage2.log_history)},
        "loss_curve": {"stage1": _losses(stage1.log_history), "stage2": _losses(stage2.log_history)},
        "trainable_parameters": {"stage1": stage1.trainable, "stage2": stage2.trainable},
        "interaction_gate_abs_sum": gates_after,
        "seconds": {"stage1": round(stage1_seconds, 1), "stage2": round(stage2_seconds, 1), "eval": round(eval_seconds, 1),
                    "total": round(time.perf_counter() - started, 1)},
        "examples": examples[:6],
    }
    (run_dir / "record.json").write_text(json.dumps(record, indent=1))
    log(f"    {variant.label} seed {seed}: overall {accuracy['overall']:.3f} (global {accuracy['global']:.3f}, "
        f"detail {accuracy['detail']:.3f}) in {record['seconds']['total']:.0f} s")
    return record


def _gate_norm(checkpoint: Path) -> float | None:
    """Sum of |gate| over all interaction gates of a saved checkpoint (0 for variant d)."""
    from safetensors import safe_open

    total, found = 0.0, False
    for path in sorted(checkpoint.glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 -- safe_open handles are not mappings
                if key.endswith(("ca_weight", "cffn_weight")):
                    total += float(handle.get_tensor(key).float().abs().sum())
                    found = True
    return round(total, 6) if found else None


def _losses(history: list[dict]) -> list[list[float]]:
    """``[step, loss]`` pairs logged by the Trainer (every ``logging_steps``)."""
    return [[row["step"], round(float(row["loss"]), 4)] for row in history if "loss" in row]


def _labelled(files, split: str):
    """A split's images and attributes (``attributes.json``) for stage 0."""
    from .synthetic import ATTRIBUTES_FILE, LABELS
    from ..train.tower_pretraining import LabelledImages

    rows = json.loads((Path(files.root) / ATTRIBUTES_FILE).read_text())[split]
    return LabelledImages([Path(files.root) / r["image"] for r in rows], {n: [r[n] for r in rows] for n in LABELS}, dict(LABELS))


def evaluate(model_dir: Path, files, batch_size: int, bf16: bool = False) -> tuple[dict, list[dict]]:
    """Greedy answers to every test question; exact match after normalisation, per type and scope."""
    from ..inference import (
        GenerationOptions,
        Generator,
        load_pretrained_model,
        user_message,
    )
    from .synthetic import normalize_answer

    generator = Generator(load_pretrained_model(str(model_dir), dtype=torch.bfloat16 if bf16 else None))  # device: auto
    rows = [json.loads(line) for line in Path(files.test).read_text().splitlines()]
    hits: dict[str, list[int]] = {}
    scopes: dict[str, list[int]] = {"global": [], "detail": []}
    examples = []
    options = GenerationOptions(max_new_tokens=4)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        answers = generator.generate([[user_message(r["text"], 1)] for r in chunk],
                                     [[Path(files.image_folder) / r["image"]] for r in chunk], options)
        for row, answer in zip(chunk, answers):
            hit = int(normalize_answer(answer) == normalize_answer(row["answer"]))
            hits.setdefault(row["question_type"], []).append(hit)
            scopes[row["scope"]].append(hit)
            if len(examples) < 12:
                examples.append({"image": row["image"], "question": row["text"], "answer": answer, "expected": row["answer"]})
    everything = [h for v in hits.values() for h in v]
    accuracy = {"overall": _mean(everything), "n": len(everything)}
    accuracy.update({scope: _mean(v) for scope, v in scopes.items()})
    accuracy.update({kind: _mean(v) for kind, v in sorted(hits.items())})
    return accuracy, examples


def _mean(values: list[int]) -> float:
    return round(sum(values) / len(values), 4) if values else float("nan")


# ------------------------------------------------------------------------------------------ experiment


def run(config: ExperimentConfig, log: Callable[[str], None] = print) -> dict:
    """Build the data, check the compute budget, train + evaluate every (variant, seed); write the report."""
    from ..quickstart.smollm2 import smollm2_path
    from . import synthetic

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    sizes = config.sizes
    all_variants = variants(config.image_size)
    table = compute_table(config.image_size, tuple(dict.fromkeys(("a",) + tuple(config.variants))))
    ratios = check_budget(table)
    for key in config.variants:
        row = table[key]
        log(f"({key}) {all_variants[key].description}: {row['vision_gmacs'] * 1e3:.1f} MMACs "
            f"({ratios[key]:.2f}x (a)), {row['visual_tokens']} visual tokens")

    data_dir = out / "data"
    meta_path = data_dir / "meta.json"
    wanted = {"format": synthetic.FORMAT_VERSION, "seed": config.data_seed, "stage1_images": sizes.stage1_captions,
              "stage2_images": sizes.stage2_conversations, "test_images": sizes.test_images, "image_size": config.image_size}
    if meta_path.exists() and {k: json.loads(meta_path.read_text()).get(k) for k in wanted} == wanted:
        files = synthetic.files_of(data_dir)
        log(f"data: reusing {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        files = synthetic.build(data_dir, seed=config.data_seed, stage1_images=sizes.stage1_captions,
                                stage2_images=sizes.stage2_conversations, test_images=sizes.test_images, image_size=config.image_size)
        log(f"data: {files.num_stage1} captions, {files.num_stage2_conversations} conversations "
            f"({files.num_stage2_questions} QA), {files.num_test} test questions -> {data_dir}")
    llm = Path(config.llm) if config.llm else smollm2_path()

    results_path = out / "results.json"
    previous = _previous_runs(results_path, config)
    runs: list[dict] = []
    for seed in config.seeds:
        for key in config.variants:
            done = previous.get((key, seed))
            if done is not None:
                log(f"  ({key}) seed {seed}: reusing the finished run from {results_path}")
                runs.append(done)
            else:
                log(f"  ({key}) seed {seed}: training ...")
                runs.append(run_one(all_variants[key], seed, files, config, llm, table[key], log))
            results = assemble(config, table, ratios, runs, files, time.perf_counter() - started)
            results_path.write_text(json.dumps(results, indent=1))
    write_report(results, out)
    log(f"wrote {results_path}, {out / 'results.md'}, {out / PLOT_NAME}")
    return results


def _previous_runs(path: Path, config: ExperimentConfig) -> dict[tuple[str, int], dict]:
    if not config.resume or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return {}
    if data.get("fingerprint") != json.loads(json.dumps(config.fingerprint())):
        return {}
    return {(r["variant"], r["seed"]): r for r in data.get("runs", [])}


def assemble(config: ExperimentConfig, table: dict, ratios: dict, runs: list[dict], files, seconds: float) -> dict:
    all_variants = variants(config.image_size)
    return {
        "claim": "arXiv 2501.07783: an inverted pyramid beats a single-resolution tower at equal or lower cost, "
                 "most on detail-dependent questions",
        "config": {**asdict(config), "sizes": asdict(config.sizes)},
        "fingerprint": config.fingerprint(),
        "data": {"stage1_captions": files.num_stage1, "stage2_conversations": files.num_stage2_conversations,
                 "stage2_questions": files.num_stage2_questions, "test_questions": files.num_test},
        "variants": {
            key: {"label": all_variants[key].label, "description": all_variants[key].description,
                  "projector_type": all_variants[key].projector_type,
                  "freeze_interaction_gates": all_variants[key].freeze_interaction_gates,
                  "vision_gmacs": table[key]["vision_gmacs"], "macs_ratio_to_a": ratios[key],
                  "visual_tokens": table[key]["visual_tokens"], "vision_params": table[key]["vision_params"],
                  "macs_by_component_g": {k: v / 1e9 for k, v in table[key]["macs_by_component"].items()},
                  "vision_config": all_variants[key].vision_config()}
            for key in config.variants
        },
        "budget": {"max_ratio_to_a": MAX_MACS_RATIO, "ratios": ratios},
        "runs": runs,
        "summary": summarize(runs),
        "environment": {"torch": torch.__version__, "threads": torch.get_num_threads(), "bf16": config._bf16()},
        "seconds": round(seconds, 1),
        "run_seconds_sum": round(sum(r["seconds"]["total"] for r in runs), 1),
    }


METRICS = ("overall", "global", "detail", "big_color", "big_side", "big_shape", "pattern")


def summarize(runs: list[dict]) -> dict[str, dict]:
    """Per variant: mean, std (across seeds, sample std; 0 for one seed) and n of each accuracy, plus times."""
    out: dict[str, dict] = {}
    for key in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == key]
        row = {"n_seeds": len(mine), "vision_gmacs": mine[0]["vision_gmacs"], "visual_tokens": mine[0]["visual_tokens"]}
        for metric in METRICS:
            values = [r["accuracy"][metric] for r in mine if metric in r["accuracy"] and not math.isnan(r["accuracy"][metric])]
            if values:
                row[metric] = {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        probes = [r["stage0"]["probe_accuracy"] for r in mine if r.get("stage0")]
        if probes:
            row["probe"] = {name: {"mean": statistics.fmean(p[name] for p in probes),
                                   "std": statistics.stdev(p[name] for p in probes) if len(probes) > 1 else 0.0}
                            for name in probes[0]}
        row["seconds_mean"] = statistics.fmean(r["seconds"]["total"] for r in mine)
        out[key] = row
    return out


# --------------------------------------------------------------------------------------------- report

PLOT_NAME = "pyramid_accuracy_vs_gmacs.png"
PAPER_PLOT_NAME = "paper_textvqa_vs_gflops.png"
COLORS = {"a": "#1f77b4", "b": "#7f7f7f", "c": "#d62728", "d": "#ff9896"}


def write_report(results: dict, out: Path) -> None:
    out = Path(out)
    (out / "results.md").write_text(format_markdown(results))
    plot_accuracy_vs_gmacs(results, out / PLOT_NAME)


def _cell(row: dict, metric: str) -> str:
    value = row.get(metric)
    if value is None:
        return "-"
    return f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f}"


def format_markdown(results: dict) -> str:
    sizes = results["config"]["sizes"]
    data = results["data"]
    lines = [
        "# Parameter-inverted pyramid vs single-resolution towers (miniature)",
        "",
        f"Claim tested: {results['claim']}.",
        "",
        (f"- task: `piip_llava.evidence.synthetic` ({results['config']['image_size']} px scenes), "
         f"{data['stage1_captions']} stage-1 captions, {data['stage2_conversations']} stage-2 conversations "
         f"({data['stage2_questions']} QA), {data['test_questions']} held-out questions"),
        f"- recipe: {_recipe(results['config'].get('llm') or 'SmolLM2-135M-Instruct', sizes)}, bf16={results['environment']['bf16']}",
        f"- seeds: {results['config']['seeds']} (accuracy: mean ± sample std across seeds, in %)",
        (f"- vision MACs: `piip_llava.flops.count` (paper convention, projector excluded); budget: (c), (d) <= "
         f"{results['budget']['max_ratio_to_a']}x (a)"),
        "",
        ("| variant | GMACs | x (a) | visual tokens | overall | global | detail | " + " | ".join(METRICS[3:]) + " | s/run |"),
        ("|---|---|---|---|---|---|---|" + "---|" * len(METRICS[3:]) + "---|"),
    ]
    for key, row in results["summary"].items():
        variant = results["variants"][key]
        cells = [_cell(row, m) for m in METRICS]
        lines.append(f"| {variant['label']} | {variant['vision_gmacs']:.4f} | {variant['macs_ratio_to_a']:.2f} | "
                     f"{variant['visual_tokens']} | " + " | ".join(cells) + f" | {row['seconds_mean']:.0f} |")
    probed = {k: row["probe"] for k, row in results["summary"].items() if "probe" in row}
    if probed:
        names = list(next(iter(probed.values())))
        lines += ["", "What each tower can see: stage-0 linear-probe accuracy on the held-out scenes (%, no LLM involved):", "",
                  "| variant | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines += [f"| {results['variants'][k]['label']} | " + " | ".join(_cell(probe, n) for n in names) + " |"
                  for k, probe in probed.items()]
    lines += [
        "",
        ("Chance (answers are balanced): big_color 16.7, big_side 50, big_shape 50, pattern 25; overall 35.4, global 38.9, "
         "detail 25 (the probe's big_shape names the shape: 33.3)."),
        "",
        "Variants:",
        "",
    ]
    lines += [f"- **{v['label']}**: {v['description']}; projector `{v['projector_type']}`" for v in results["variants"].values()]
    total = results.get("run_seconds_sum", results["seconds"])
    lines += ["", (f"Wall time: {total:.0f} s for the {len(results['runs'])} runs (each timed when it ran); "
                   f"this call took {results['seconds']:.0f} s, reusing finished runs."), ""]
    return "\n".join(lines)


def _recipe(llm: str, sizes: dict) -> str:
    stage0 = (f"stage 0: tower pretrained on the stage-1 scenes' attributes ({sizes['tower_pretrain_steps']} steps, "
              f"lr {sizes['tower_pretrain_lr']}), then stage 1: projector only" if sizes.get("tower_pretrain_steps")
              else "stage 1: tower from random init + projector")
    llm_stage2 = "frozen" if sizes["freeze_llm"] else f"lr {sizes['stage2_lr']}"
    return (f"{llm}; {stage0} (lr {sizes['stage1_lr']}, LLM frozen); stage 2: LLM {llm_stage2}, tower + projector "
            f"lr {sizes['stage2_vision_lr']}; batch {sizes['batch_size']}")


CHANCE = {"overall": 100 * (1 / 6 + 1 / 2 + 1 / 2 + 1 / 4) / 4, "detail": 100 / 4, "global": 100 * (1 / 6 + 1 / 2 + 1 / 2) / 3}
"""Accuracy of a blind guesser (balanced answers), per panel."""
DISPLAY_OFFSET = {"d": 1.04}
"""(d) has exactly (c)'s MACs; it is drawn 4 % to the right so the two stay visible."""


def plot_accuracy_vs_gmacs(results: dict, path: Path) -> None:
    """Accuracy vs vision GMACs: one small point per run, mean ± std across seeds per variant (the
    miniature counterpart of the paper's accuracy-vs-FLOPs figure)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = (("overall", "all questions"), ("detail", "detail questions (the box's one-pixel pattern)"),
              ("global", "global questions (big shape colour, side, shape)"))
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.6), sharex=True)
    largest = max(v["vision_gmacs"] for v in results["variants"].values())
    for axis, (metric, title) in zip(axes, panels):
        for key, row in results["summary"].items():
            variant = results["variants"][key]
            x = variant["vision_gmacs"] * DISPLAY_OFFSET.get(key, 1.0)
            runs = [r for r in results["runs"] if r["variant"] == key]
            jitter = [x * (1 + 0.012 * (k - (len(runs) - 1) / 2)) for k in range(len(runs))]
            axis.scatter(jitter, [100 * r["accuracy"][metric] for r in runs], s=16, alpha=0.5, color=COLORS.get(key, "black"))
            if metric in row:
                axis.errorbar([x], [100 * row[metric]["mean"]], yerr=[100 * row[metric]["std"]], fmt="o", ms=9, capsize=5,
                              mfc="none", mew=2, color=COLORS.get(key, "black"), label=variant["label"])
        axis.axhline(CHANCE[metric], ls="--", lw=1, color="black", alpha=0.5, label="chance")
        axis.set_xlim(0, largest * 1.15)
        axis.set_ylim(0, 100)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("vision encoder GMACs (piip_llava.flops, paper convention)")
        axis.set_ylabel("accuracy (%)")
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles, labels, fontsize=8, loc="lower right")
    figure.suptitle("Inverted pyramid vs single-resolution towers on the synthetic detail VQA: mean ± std over seeds "
                    f"{list(results['config']['seeds'])} (small dots: single runs; (d) drawn beside (c), same MACs)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ------------------------------------------------------------------------------- the paper's own numbers


def paper_textvqa_points(json_path: Path | str) -> list[dict]:
    """The released models' TextVQA accuracies from ``json_path`` with their vision FLOPs computed by
    ``piip_llava.flops.count_by_name`` (never taken from the file); entries with a null accuracy are kept
    but marked unplottable."""
    from ..flops import count_by_name

    data = json.loads(Path(json_path).read_text())
    computed: dict[str, float] = {}
    points = []
    for entry in data["models"]:
        name = entry["architecture"]
        if name not in computed:
            computed[name] = count_by_name(name).macs_paper / 1e9
        points.append({**entry, "gflops_computed": computed[name], "plottable": entry.get("textvqa") is not None})
    return points


def _label_dy(point: dict, points: list[dict]) -> int:
    """Vertical label offset (points) that keeps labels of nearly coincident markers apart."""
    close = [p for p in points if p is not point and p["plottable"] and abs(p["gflops_computed"] - point["gflops_computed"]) < 60
             and abs(p["textvqa"] - point["textvqa"]) < 0.8]
    if not close:
        return 0
    return 6 if all(point["textvqa"] >= p["textvqa"] for p in close) else -6


def plot_paper_textvqa(path: Path | str, json_path: Path | str) -> list[dict]:
    """TextVQA vs vision FLOPs of the released PIIP-LLaVA models next to LLaVA-1.5 (7B and 13B LLMs)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    points = paper_textvqa_points(json_path)
    data = json.loads(Path(json_path).read_text())
    source = data.get("source_short", data.get("source", ""))
    figure, axis = plt.subplots(figsize=(8.5, 5.2))
    for llm, marker in (("7B", "o"), ("13B", "s")):
        for point in points:
            if not point["plottable"] or point["llm"] != llm:
                continue
            baseline = point["architecture"].startswith("llava")
            color = "#7f7f7f" if baseline else "#d62728"
            axis.scatter(point["gflops_computed"], point["textvqa"], marker=marker, s=60, color=color, zorder=3)
            axis.annotate(point.get("short", point["label"]), (point["gflops_computed"], point["textvqa"]), textcoords="offset points",
                          xytext=(7, _label_dy(point, points)), va="center", fontsize=7)
    missing = [p["label"] for p in points if not p["plottable"]]
    axis.set_xlim(0, max(p["gflops_computed"] for p in points) * 1.3)
    axis.set_xlabel("vision encoder GFLOPs (paper convention, i.e. MACs; computed by piip_llava.flops.count_by_name)")
    axis.set_ylabel("TextVQA accuracy (%)")
    axis.set_title("Released PIIP-LLaVA (red) vs LLaVA-1.5 (grey); circles: 7B LLM, squares: 13B", fontsize=10)
    axis.grid(alpha=0.3)
    note = f"accuracies: {source}" + (f"; not plotted (unverified): {', '.join(missing)}" if missing else "")
    figure.text(0.01, 0.005, note, fontsize=6, wrap=True)
    figure.tight_layout(rect=(0, 0.04, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return points
