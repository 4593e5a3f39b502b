"""The benchmark registry: names, LLaVA-1.5 file layout, and end-to-end use through a spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from piip_llava.eval.benchmarks import BENCHMARKS, BenchmarkSpec, UnknownBenchmarkError, get_benchmark

from .helpers import FIXTURES, read_jsonl

NAMES = {
    "textvqa", "textvqa_no_ocr", "mmbench_en", "mmbench_cn", "pope", "scienceqa", "seed", "gqa", "mme",
    "vqav2", "vizwiz", "mmvet",
}  # fmt: skip


def test_names():
    assert set(BENCHMARKS) == NAMES
    assert all(isinstance(s, BenchmarkSpec) and s.name == n for n, s in BENCHMARKS.items())


def test_registry_is_read_only():
    with pytest.raises(TypeError):
        BENCHMARKS["new"] = BENCHMARKS["pope"]  # type: ignore[index]
    with pytest.raises(TypeError):
        BENCHMARKS["pope"].files["question_file"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        BENCHMARKS["pope"].folder = "x"  # type: ignore[misc]


def test_unknown_name_lists_choices():
    with pytest.raises(UnknownBenchmarkError, match="unknown benchmark 'coco'; choose one of: textvqa"):
        get_benchmark("coco")


@pytest.mark.parametrize(
    ("name", "role", "path"),
    [
        ("textvqa", "question_file", "textvqa/llava_textvqa_val_v051_ocr.jsonl"),
        ("textvqa", "annotation_file", "textvqa/TextVQA_0.5.1_val.json"),
        ("textvqa", "image_folder", "textvqa/train_images"),
        ("mmbench_en", "tsv_file", "mmbench/mmbench_dev_20230712.tsv"),
        ("mmbench_cn", "tsv_file", "mmbench_cn/mmbench_dev_cn_20231003.tsv"),
        ("pope", "question_file", "pope/llava_pope_test.jsonl"),
        ("pope", "annotation_dir", "pope/coco"),
        ("pope", "image_folder", "pope/val2014"),
        ("scienceqa", "question_file", "scienceqa/llava_test_CQM-A.json"),
        ("scienceqa", "image_folder", "scienceqa/images/test"),
        ("seed", "question_file", "seed_bench/llava-seed-bench.jsonl"),
        ("seed", "annotation_file", "seed_bench/SEED-Bench.json"),
        ("gqa", "question_file", "gqa/llava_gqa_testdev_balanced.jsonl"),
        ("gqa", "image_folder", "gqa/data/images"),
        ("mme", "question_file", "MME/llava_mme.jsonl"),
        ("mme", "data_root", "MME/MME_Benchmark_release_version"),
        ("vqav2", "question_file", "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl"),
        ("vqav2", "test_split_file", "vqav2/llava_vqav2_mscoco_test2015.jsonl"),
        ("vizwiz", "question_file", "vizwiz/llava_test.jsonl"),
        ("mmvet", "question_file", "mm-vet/llava-mm-vet.jsonl"),
    ],
)
def test_llava_default_layout(name, role, path):
    root = Path("playground/data/eval")
    assert BENCHMARKS[name].paths()[role] == root / path


def test_answers_and_export_locations():
    root = Path("playground/data/eval")
    assert (
        BENCHMARKS["vqav2"].answers_path("m")
        == root / "vqav2/answers/llava_vqav2_mscoco_test-dev2015/m/merge.jsonl"
    )
    assert BENCHMARKS["textvqa"].answers_path("m") == root / "textvqa/answers/m.jsonl"
    assert BENCHMARKS["mmbench_en"].export_template == "answers_upload/mmbench_dev_20230712/{model}.xlsx"
    assert not BENCHMARKS["pope"].can_export and not BENCHMARKS["vizwiz"].can_score


def test_override_and_bad_role(tmp_path):
    spec = BENCHMARKS["mmbench_en"]
    assert spec.paths(tsv_file=tmp_path / "test.tsv")["tsv_file"] == tmp_path / "test.tsv"
    with pytest.raises(TypeError, match="no file role"):
        spec.paths(question_file="x")


def test_server_only_benchmarks_refuse_local_scoring(tmp_path):
    with pytest.raises(NotImplementedError, match="submit"):
        BENCHMARKS["vqav2"].score(tmp_path / "a.jsonl")
    with pytest.raises(NotImplementedError, match="scored locally"):
        BENCHMARKS["pope"].export(tmp_path / "a.jsonl")


@pytest.fixture
def eval_root(tmp_path):
    """The fixtures laid out as LLaVA-1.5's playground/data/eval expects them."""
    root = tmp_path / "playground" / "data" / "eval"
    copies = {
        "textvqa/question_file_fixture.jsonl": "textvqa/llava_textvqa_val_v051_ocr.jsonl",
        "textvqa/TextVQA_fixture_val.json": "textvqa/TextVQA_0.5.1_val.json",
        "textvqa/answers_fixture.jsonl": "textvqa/answers/m.jsonl",
        "pope/e2e/llava_pope_fixture.jsonl": "pope/llava_pope_test.jsonl",
        "pope/e2e/coco": "pope/coco",
        "pope/e2e/answers_fixture.jsonl": "pope/answers/m.jsonl",
        "scienceqa/e2e/problems.json": "scienceqa/problems.json",
        "scienceqa/e2e/pid_splits.json": "scienceqa/pid_splits.json",
        "scienceqa/e2e/answers_fixture.jsonl": "scienceqa/answers/m.jsonl",
        "seed/e2e/SEED-Bench-fixture.json": "seed_bench/SEED-Bench.json",
        "seed/e2e/answers_fixture.jsonl": "seed_bench/answers/m/merge.jsonl",
        "mmbench/mmbench_fixture_en.tsv": "mmbench/mmbench_dev_20230712.tsv",
        "mmbench/mmbench_fixture_en_llava_answers.jsonl": "mmbench/answers/mmbench_dev_20230712/m.jsonl",
    }
    for src, dst in copies.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        copy = shutil.copytree if (FIXTURES / src).is_dir() else shutil.copy
        copy(FIXTURES / src, root / dst)
    for folder in ("textvqa/train_images", "pope/val2014"):
        (root / folder).mkdir(parents=True)
    return root


@pytest.mark.parametrize(
    ("name", "expected"),
    [("textvqa", 63.466666666666725), ("pope", None), ("scienceqa", 7 / 12 * 100), ("seed", 4 / 9 * 100)],
)
def test_score_through_registry(eval_root, name, expected):
    spec = BENCHMARKS[name]
    results = spec.score(spec.answers_path("m", eval_root), eval_root)
    assert results["benchmark"] == name
    assert results["main_metric"] == spec.main_metric
    if expected is not None:
        assert results["main_score"] == pytest.approx(expected, abs=1e-12)


def test_read_questions_through_registry(eval_root):
    questions = BENCHMARKS["textvqa"].read_questions(eval_root)
    assert len(questions) == 300
    assert questions[0].image == eval_root / "textvqa/train_images/90d6a053bd23453f.jpg"
    no_ocr = BENCHMARKS["textvqa_no_ocr"].read_questions(eval_root)
    assert "Reference OCR token" not in no_ocr[0].prompt_text


def test_mmbench_through_registry(eval_root):
    pytest.importorskip("pandas")
    pytest.importorskip("openpyxl")
    spec = BENCHMARKS["mmbench_en"]
    answers = spec.answers_path("m", eval_root)
    assert len(spec.read_questions(eval_root)) == len(read_jsonl(answers)) == 39
    assert spec.score(answers, eval_root)["judge_required"] == 4
    out = spec.export(answers, eval_root=eval_root)
    assert out == eval_root / "mmbench/answers_upload/mmbench_dev_20230712/m.xlsx" and out.is_file()


def test_seed_export_default_location(eval_root):
    spec = BENCHMARKS["seed"]
    out = spec.export(spec.answers_path("m", eval_root), eval_root=eval_root)
    assert out == eval_root / "seed_bench/answers_upload/m.jsonl"


def test_missing_benchmark_files_point_to_readme(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"question file not found: .*llava_pope_test.jsonl. See eval/README.md"
    ):
        BENCHMARKS["pope"].read_questions(tmp_path)


def test_mmbench_without_pandas_says_how_to_install(monkeypatch):
    import sys

    from piip_llava.eval.benchmarks import mmbench

    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'piip-llava\[eval\]'"):
        mmbench.read_questions(FIXTURES / "mmbench" / "mmbench_fixture_en.tsv")
