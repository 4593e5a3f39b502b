"""Generate answers for LLaVA-1.5 benchmarks, then score them and write submission files.

``piip-llava eval BENCH [BENCH ...] --model PATH`` reads each benchmark from LLaVA's
``playground/data/eval`` layout, writes answers where LLaVA's scripts write them (resuming a killed
run), scores benchmarks that have local ground truth, exports upload files for the others, and
keeps ``<output-dir>/results.json`` + ``results.md`` (one row per benchmark, the paper's column
names) up to date across calls. Sharding: ``--num-chunks N --chunk-idx K`` per process and a final
``--num-chunks N --score-only`` merge (LLaVA's pattern, see eval/*.sh), or simply
``torchrun --nproc-per-node N -m piip_llava.cli eval ...`` (ranks shard and merge automatically).
"""

from __future__ import annotations

import argparse

PAPER_COLUMNS = {
    "textvqa": "TextVQA",
    "mmbench_en": "MMBench",
    "mmbench_cn": "MMBench-CN",
    "pope": "POPE",
    "scienceqa": "SQA-IMG",
    "seed": "SEED-IMG",
    "gqa": "GQA",
    "mme": "MME",
    "vqav2": "VQAv2",
    "vizwiz": "VizWiz",
    "mmvet": "MM-Vet",
}
"""Benchmark -> column name in the PIIP-LLaVA / LLaVA-1.5 result tables (first eight: PIIP's)."""

DEFAULT_OUTPUT_ROOT = "outputs/eval"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("benchmarks", nargs="+", metavar="BENCH",
                        help="benchmark name(s): textvqa textvqa_no_ocr mmbench_en mmbench_cn pope scienceqa seed gqa "
                             "mme vqav2 vizwiz mmvet (see eval/README.md)")
    parser.add_argument("--model", help="checkpoint folder (ours or an official PIIP-LLaVA / LLaVA-1.5 release)")
    parser.add_argument("--model-name", help="name used for answers files and model_id (default: LLaVA's rule: "
                                             "the folder name, or parent_checkpoint-N)")
    parser.add_argument("--eval-root", default="playground/data/eval", help="LLaVA's eval data root")
    parser.add_argument("--output-dir", help=f"results.json / results.md / score details (default {DEFAULT_OUTPUT_ROOT}/<model-name>)")
    parser.add_argument("--file", action="append", default=[], metavar="ROLE=PATH",
                        help="override one benchmark file, e.g. tsv_file=.../mmbench_test_en_20231003.tsv (repeatable)")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per generate call, left-padded (default 8)")
    parser.add_argument("--num-chunks", type=int, help="split the questions into N contiguous chunks (LLaVA's --num-chunks)")
    parser.add_argument("--chunk-idx", type=int, help="which chunk this process answers (LLaVA's --chunk-idx)")
    parser.add_argument("--template", help="conversation template (default: the one recorded in the checkpoint)")
    parser.add_argument("--device", help="cuda, cuda:1, cpu, mps (default: best available; cuda:LOCAL_RANK under torchrun)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"),
                        help="weights dtype (default: float16 on GPU, float32 on CPU)")
    parser.add_argument("--attn-implementation", help="sdpa, eager, flash_attention_2 (default: the checkpoint's)")
    parser.add_argument("--max-new-tokens", type=int, help="generation budget (default: LLaVA's per benchmark, 128 or 1024)")
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (LLaVA-1.5's protocol)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--num-beams", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (only used with --temperature > 0)")
    parser.add_argument("--limit", type=int, help="only the first N questions of each benchmark (smoke runs)")
    parser.add_argument("--score-only", action="store_true",
                        help="do not generate: merge finished chunks (with --num-chunks) and score existing answers")
    parser.add_argument("--overwrite", action="store_true", help="delete existing answers and generate from scratch")
    parser.add_argument("--num-workers", type=int, default=2, help="image-decoding threads (default 2)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def llava_model_name(model_path: str) -> str:
    """LLaVA's ``get_model_name_from_path``: the folder name, or ``parent_checkpoint-N``."""
    parts = model_path.strip("/").split("/")
    return f"{parts[-2]}_{parts[-1]}" if parts[-1].startswith("checkpoint-") and len(parts) > 1 else parts[-1]


def run(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from ..errors import ConfigError
    from ..eval.engine import EngineConfig, Shard

    specs = _resolve_benchmarks(args.benchmarks)
    files = _file_overrides(args.file, specs)
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {args.limit}.")
    if args.model is None and args.model_name is None:
        raise ConfigError("give --model PATH (or, with --score-only, --model-name NAME).")
    if args.model is None and not args.score_only:
        raise ConfigError("generating answers needs --model PATH (or pass --score-only).")
    model_name = args.model_name or llava_model_name(args.model)
    if args.score_only:
        if args.chunk_idx is not None:
            raise ConfigError("--score-only merges every chunk; drop --chunk-idx.")
        world = int(os.environ.get("WORLD_SIZE", "1") or 1)
        if world > 1 and int(os.environ.get("RANK", "0")) != 0:
            return 0  # rank 0 merges and scores
        shard = Shard(args.num_chunks or world, 0)
    else:
        shard = Shard.from_env(args.num_chunks, args.chunk_idx)
    config = EngineConfig(
        batch_size=args.batch_size, max_new_tokens=args.max_new_tokens, temperature=args.temperature,
        top_p=args.top_p, num_beams=args.num_beams, seed=args.seed, model_id=model_name,
        num_workers=args.num_workers, progress=not args.no_progress,
    )
    settings = {
        "model": args.model, "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "temperature": args.temperature, "top_p": args.top_p, "num_beams": args.num_beams,
        "template": args.template, "dtype": args.dtype, "limit": args.limit,
    }

    engine = None
    if not args.score_only:
        from ..eval.engine import EvalEngine, device_for_process
        from ..inference import load_pretrained_model

        loaded = load_pretrained_model(
            args.model, device=device_for_process(args.device), dtype=args.dtype, template=args.template,
            attn_implementation=args.attn_implementation,
        )
        engine = EvalEngine(loaded, config)
        settings["template"] = loaded.template.name
        settings["device"] = str(engine.generator.device)

    out_dir = Path(args.output_dir or Path(DEFAULT_OUTPUT_ROOT) / model_name)
    entries, failed = {}, False
    for spec in specs:
        entry = _evaluate_one(spec, engine, shard, args, model_name, files[spec.name], out_dir)
        if entry is None:  # a shard that does not merge: nothing to score here
            continue
        failed |= bool(entry.get("error") or entry.get("score_error") or entry.get("export_error"))
        for key in ("error", "score_error", "export_error"):
            if entry.get(key):
                print(f"error: {spec.name}: {entry[key]}", file=sys.stderr)
        if shard.merges or args.score_only:  # only the merging process owns results.json
            entry["settings"] = dict(settings, max_new_tokens=args.max_new_tokens or spec.max_new_tokens)
            entries[spec.name] = entry
    if not entries:
        return 1 if failed else 0
    results = _update_results(out_dir / "results.json", model_name, entries)
    markdown = format_markdown(results)
    (out_dir / "results.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    print(f"results: {out_dir / 'results.json'}  table: {out_dir / 'results.md'}")
    return 1 if failed else 0


def _resolve_benchmarks(names):
    from ..errors import ConfigError
    from ..eval.benchmarks import UnknownBenchmarkError, get_benchmark

    specs = []
    for name in dict.fromkeys(names):
        try:
            specs.append(get_benchmark(name))
        except UnknownBenchmarkError as error:
            raise ConfigError(str(error)) from None
    return specs


def _file_overrides(items, specs) -> dict:
    from ..errors import ConfigError

    pairs = {}
    for item in items:
        role, sep, path = item.partition("=")
        if not sep or not role or not path:
            raise ConfigError(f"--file expects ROLE=PATH, got {item!r}.")
        if not any(role in spec.files for spec in specs):
            roles = sorted({r for spec in specs for r in spec.files})
            raise ConfigError(f"--file {role}=...: no selected benchmark has a file role {role!r}; roles: {', '.join(roles)}.")
        pairs[role] = path
    return {spec.name: {r: p for r, p in pairs.items() if r in spec.files} for spec in specs}


def _evaluate_one(spec, engine, shard, args, model_name, files, out_dir):
    """Generate (or merge), score and export one benchmark; errors a user can fix end up in the entry."""
    from ..errors import PiipLlavaError
    from ..eval.benchmarks import EvalDataError, MissingAnswersError
    from ..eval.engine import finalize_answers, select_questions

    entry = {"benchmark": spec.name, "title": spec.title, "paper_column": PAPER_COLUMNS.get(spec.name),
             "main_metric": spec.main_metric, "main_score": None}
    try:
        questions = select_questions(spec.read_questions(args.eval_root, **files), args.limit)
        answers_file = spec.answers_path(model_name, args.eval_root)
        if engine is None:
            match = finalize_answers(questions, answers_file, shard.num_chunks)
            entry.update(questions=len(questions), answered=match.num_answered)
        else:
            result = engine.run(questions, answers_file, name=spec.name,
                                max_new_tokens=args.max_new_tokens or spec.max_new_tokens,
                                shard=shard, overwrite=args.overwrite)
            if not shard.merges:
                hint = "" if shard.launched else (
                    f"; when every chunk is done: piip-llava eval {spec.name} --model-name {model_name} "
                    f"--num-chunks {shard.num_chunks} --score-only")
                print(f"{spec.name} {shard.describe()}: {result.num_questions} answers in {result.answers_file}{hint}")
                return None
            rate = result.answers_per_second
            entry.update(questions=len(questions), answered=len(questions), generated=result.generated,
                         resumed=result.resumed, seconds=round(result.seconds, 2),
                         answers_per_second=None if rate is None else round(rate, 3))
        entry["answers_file"] = str(answers_file)
    except (EvalDataError, FileNotFoundError, ImportError, PiipLlavaError) as error:
        entry["error"] = str(error)
        return entry

    partial = args.limit is not None or entry["answered"] < entry["questions"]
    if spec.can_score:
        try:
            scores = spec.score(answers_file, args.eval_root, **files)
        except MissingAnswersError as error:
            entry["score_error" if not partial else "note"] = f"not scored: {error}"
        except (EvalDataError, FileNotFoundError, ImportError) as error:
            entry["score_error"] = str(error)
        else:
            details = _write_json(out_dir / f"{spec.name}.scores.json", scores)
            entry.update(main_metric=scores.get("main_metric", spec.main_metric), main_score=scores.get("main_score"),
                         scores=_summary(scores), scores_file=str(details))
    if spec.can_export:
        try:
            entry["export_file"] = str(spec.export(answers_file, model_name=model_name, eval_root=args.eval_root, **files))
        except MissingAnswersError as error:
            entry["export_error" if not partial else "note"] = f"no export: {error}"
        except (EvalDataError, FileNotFoundError, ImportError) as error:
            entry["export_error"] = str(error)
    if partial:
        why = f"--limit {args.limit}" if args.limit is not None else f"{entry['answered']}/{entry['questions']} answered"
        entry["note"] = "; ".join(filter(None, [entry.get("note"), f"partial ({why})"]))
    return entry


def _summary(scores: dict) -> dict:
    """Scalars and nested dicts of scalars; per-question lists stay in the details file."""
    out = {}
    for key, value in scores.items():
        if isinstance(value, dict):
            value = _summary(value)
            if value:
                out[key] = value
        elif value is None or isinstance(value, (str, int, float, bool)):
            out[key] = value
    return out


def _write_json(path, obj):
    import json
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _update_results(path, model_name: str, entries: dict) -> dict:
    """Merge this call's entries into ``results.json`` (other benchmarks' rows are kept)."""
    import json

    results = {"model_name": model_name, "benchmarks": {}}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            previous = None
        if isinstance(previous, dict) and isinstance(previous.get("benchmarks"), dict):
            results["benchmarks"] = previous["benchmarks"]
    results["benchmarks"].update(entries)
    order = list(PAPER_COLUMNS) + ["textvqa_no_ocr"]
    results["benchmarks"] = dict(
        sorted(results["benchmarks"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    )
    _write_json(path, results)
    return results


def _format_score(entry: dict) -> str:
    score = entry.get("main_score")
    if score is not None:
        return f"{score:.1f}"
    if entry.get("error"):
        return "error"
    if entry.get("export_file") and entry.get("main_metric") is None:
        return "submit"
    return "—"


def format_markdown(results: dict) -> str:
    """``results.md``: one row per benchmark, then the paper-style single row."""
    rows = results["benchmarks"]
    lines = [
        f"# Evaluation: {results['model_name']}",
        "",
        "| Benchmark | Column | Metric | Score | Answered | Output |",
        "|---|---|---|---:|---:|---|",
    ]
    for name, entry in rows.items():
        answered = f"{entry.get('answered', '—')}/{entry.get('questions', '—')}"
        if entry.get("error"):
            output = f"error: {entry['error']}"
        else:
            parts = []
            if entry.get("export_file"):
                parts.append(f"export `{entry['export_file']}`")
            for key in ("score_error", "export_error", "note"):
                if entry.get(key):
                    parts.append(entry[key])
            output = "; ".join(parts) or f"answers `{entry.get('answers_file', '')}`"
        output = output.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {name} | {entry.get('paper_column') or '—'} | {entry.get('main_metric') or '—'} | "
            f"{_format_score(entry)} | {answered} | {output} |"
        )
    paper = list(PAPER_COLUMNS)[:8]
    lines += [
        "",
        "Paper layout (PIIP-LLaVA table; MME is a sum of subtask scores, the others are percentages):",
        "",
        "| " + " | ".join(PAPER_COLUMNS[c] for c in paper) + " |",
        "|" + "---:|" * len(paper),
        "| " + " | ".join(_format_score(rows[c]) if c in rows else "—" for c in paper) + " |",
        "",
    ]
    return "\n".join(lines)
