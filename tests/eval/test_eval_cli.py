"""``piip-llava eval``: generation + scoring + exports + results JSON / markdown, end to end on CPU."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from piip_llava.cli import SUBCOMMANDS
from piip_llava.commands import evaluate
from piip_llava.errors import ConfigError

from . import synthetic
from .helpers import read_jsonl

pytest.importorskip("pandas")  # MMBench TSVs

TOKENIZER = Path(__file__).resolve().parents[1] / "fixtures" / "tokenization" / "tokenizer"
FAST = ["--max-new-tokens", "3", "--batch-size", "4", "--device", "cpu", "--dtype", "float32", "--no-progress"]


def eval_main(argv: list[str]) -> int:
    """``piip-llava eval ARGV`` through the subcommand's own parser."""
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    return evaluate.run(parser.parse_args(argv))


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """ONE tiny checkpoint for the whole module."""
    from piip_llava.testing import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-piip", TOKENIZER)


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("eval")
    return root, synthetic.write_all(root)


@pytest.fixture(scope="module")
def full_run(model, eval_root, tmp_path_factory):
    root, counts = eval_root
    out = tmp_path_factory.mktemp("results")
    code = eval_main([*counts, "--model", str(model), "--eval-root", str(root), "--output-dir", str(out), *FAST])
    return code, out, json.loads((out / "results.json").read_text()), (out / "results.md").read_text()


def test_registered_as_eval_subcommand():
    assert SUBCOMMANDS["eval"][0] == "piip_llava.commands.evaluate"


def test_results_json_scores_and_exports(full_run, eval_root):
    code, _, results, _ = full_run
    root, counts = eval_root
    assert code == 0
    rows = results["benchmarks"]
    assert results["model_name"] == "tiny-piip" and list(rows) == [
        "textvqa", "mmbench_en", "pope", "scienceqa", "seed", "vizwiz"
    ]
    for name, n in counts.items():
        entry = rows[name]
        assert entry["answered"] == entry["questions"] == entry["generated"] == n, name
        assert not any(k in entry for k in ("error", "score_error", "export_error")), entry
        assert len(read_jsonl(Path(entry["answers_file"]))) == n
        assert entry["settings"]["batch_size"] == 4 and entry["settings"]["template"] == "vicuna_v1"
    # LLaVA's answers locations, LLaVA's model_id rule.
    assert rows["seed"]["answers_file"] == str(root / "seed_bench" / "answers" / "tiny-piip" / "merge.jsonl")
    assert read_jsonl(Path(rows["pope"]["answers_file"]))[0]["model_id"] == "tiny-piip"
    for name in ("textvqa", "mmbench_en", "pope", "scienceqa", "seed"):
        assert isinstance(rows[name]["main_score"], float), name
        details = json.loads(Path(rows[name]["scores_file"]).read_text())
        assert details["main_score"] == rows[name]["main_score"]
        assert "per_question" not in rows[name]["scores"]  # details stay in the per-benchmark file
    assert rows["pope"]["scores"]["per_split"]["random"]["n"] == 2
    for name, suffix in (("mmbench_en", ".xlsx"), ("seed", ".jsonl"), ("vizwiz", ".json")):
        assert Path(rows[name]["export_file"]).is_file() and rows[name]["export_file"].endswith(suffix)
    assert rows["vizwiz"]["main_score"] is None


def test_markdown_table(full_run):
    _, _, results, markdown = full_run
    assert "| Benchmark | Column | Metric | Score | Answered | Output |" in markdown
    pope = results["benchmarks"]["pope"]
    assert f"| pope | POPE | f1 | {pope['main_score']:.1f} | 6/6 |" in markdown
    assert "| vizwiz | VizWiz | — | submit | 3/3 | export `" in markdown
    header = "| TextVQA | MMBench | MMBench-CN | POPE | SQA-IMG | SEED-IMG | GQA | MME |"
    assert header in markdown
    paper_row = markdown.split(header)[1].splitlines()[2]
    assert paper_row.count("—") == 3  # MMBench-CN, GQA, MME were not run


def test_rerun_resumes_and_score_only_keeps_other_rows(full_run, model, eval_root):
    _, out, _, _ = full_run
    root, _ = eval_root
    code = eval_main(["pope", "--model", str(model), "--eval-root", str(root), "--output-dir", str(out), *FAST])
    pope = json.loads((out / "results.json").read_text())["benchmarks"]["pope"]
    assert code == 0 and pope["generated"] == 0 and pope["resumed"] == 6
    code = eval_main(["scienceqa", "--score-only", "--model-name", "tiny-piip", "--eval-root", str(root),
                      "--output-dir", str(out)])
    results = json.loads((out / "results.json").read_text())
    assert code == 0 and len(results["benchmarks"]) == 6
    assert results["benchmarks"]["scienceqa"]["answered"] == 4


def test_manual_chunks_then_score_only_merge(full_run, model, eval_root, capsys):
    _, _, results, _ = full_run
    root, _ = eval_root
    common = ["pope", "--eval-root", str(root), "--model-name", "chunked", "--output-dir", str(root / "out-chunked")]
    assert eval_main([*common, "--model", str(model), "--num-chunks", "2", "--chunk-idx", "1", *FAST]) == 0
    assert "--num-chunks 2 --score-only" in capsys.readouterr().out
    assert not (root / "out-chunked" / "results.json").exists()  # a chunk alone does not score
    with pytest.raises(ConfigError, match="drop --chunk-idx"):
        eval_main([*common, "--num-chunks", "2", "--chunk-idx", "0", "--score-only"])
    assert eval_main([*common, "--num-chunks", "2", "--score-only"]) == 1  # chunk 0 is missing
    entry = json.loads((root / "out-chunked" / "results.json").read_text())["benchmarks"]["pope"]
    assert "chunk 0: 0/3 answered" in entry["error"]
    assert eval_main([*common, "--model", str(model), "--num-chunks", "2", "--chunk-idx", "0", *FAST]) == 0
    assert eval_main([*common, "--num-chunks", "2", "--score-only"]) == 0
    merged = read_jsonl(root / "pope" / "answers" / "chunked.jsonl")
    unsharded = read_jsonl(Path(results["benchmarks"]["pope"]["answers_file"]))
    assert [(r["question_id"], r["text"]) for r in merged] == [(r["question_id"], r["text"]) for r in unsharded]


def test_torchrun_ranks_shard_and_rank0_merges(full_run, model, eval_root, monkeypatch):
    _, _, results, _ = full_run
    root, _ = eval_root
    argv = ["seed", "--model", str(model), "--eval-root", str(root), "--model-name", "ranked",
            "--output-dir", str(root / "out-ranked"), *FAST]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert eval_main(argv) == 0
    assert len(read_jsonl(root / "seed_bench" / "answers" / "ranked" / "2_1.jsonl")) == 2
    monkeypatch.setenv("RANK", "0")
    assert eval_main(argv) == 0
    entry = json.loads((root / "out-ranked" / "results.json").read_text())["benchmarks"]["seed"]
    assert entry["answered"] == 4 and entry["generated"] == 2 and entry["main_score"] is not None
    merged = read_jsonl(root / "seed_bench" / "answers" / "ranked" / "merge.jsonl")
    unsharded = read_jsonl(Path(results["benchmarks"]["seed"]["answers_file"]))
    assert [r["text"] for r in merged] == [r["text"] for r in unsharded]


def test_limit_runs_a_prefix_and_notes_unscorable_partial_runs(model, eval_root, tmp_path):
    root, _ = eval_root
    code = eval_main(["pope", "textvqa", "--limit", "2", "--model", str(model), "--model-name", "limited",
                      "--eval-root", str(root), "--output-dir", str(tmp_path), *FAST])
    rows = json.loads((tmp_path / "results.json").read_text())["benchmarks"]
    assert code == 0
    assert rows["pope"]["answered"] == 2 and "not scored" in rows["pope"]["note"] and rows["pope"]["main_score"] is None
    assert rows["textvqa"]["main_score"] is not None and rows["textvqa"]["scores"]["samples"] == 2


def test_user_errors_are_clear(model, eval_root, tmp_path, capsys):
    root, _ = eval_root
    with pytest.raises(ConfigError, match="unknown benchmark 'textvq'; choose one of: textvqa"):
        eval_main(["textvq", "--model", str(model)])
    with pytest.raises(ConfigError, match="no selected benchmark has a file role 'tsv_file'"):
        eval_main(["pope", "--model", str(model), "--file", "tsv_file=x.tsv"])
    with pytest.raises(ConfigError, match="--model-name"):
        eval_main(["pope", "--score-only"])
    # Missing data folder: recorded per benchmark, the others still run; exit code 1.
    code = eval_main(["mmbench_cn", "vizwiz", "--model", str(model), "--eval-root", str(root),
                      "--model-name", "errs", "--output-dir", str(tmp_path), *FAST])
    rows = json.loads((tmp_path / "results.json").read_text())["benchmarks"]
    assert code == 1 and "MMBench TSV file not found" in rows["mmbench_cn"]["error"]
    assert rows["vizwiz"]["answered"] == 3 and "error" not in rows["vizwiz"]
    assert "error: mmbench_cn: MMBench TSV file not found" in capsys.readouterr().err
    # --score-only before any answers exist.
    code = eval_main(["textvqa", "--score-only", "--model-name", "nobody", "--eval-root", str(root),
                      "--output-dir", str(tmp_path)])
    assert code == 1 and "generate answers first" in json.loads((tmp_path / "results.json").read_text())[
        "benchmarks"]["textvqa"]["error"]


def test_missing_image_names_question_and_path(model, tmp_path, capsys):
    root = tmp_path / "eval"
    synthetic.write_vizwiz(root)
    missing = root / "vizwiz" / "test" / "VizWiz_test_00000001.jpg"
    missing.unlink()
    code = eval_main(["vizwiz", "--model", str(model), "--eval-root", str(root), "--output-dir", str(tmp_path), *FAST])
    err = capsys.readouterr().err
    assert code == 1 and "question 1:" in err and str(missing) in err
    assert not (root / "vizwiz" / "answers" / "tiny-piip.jsonl").exists()
