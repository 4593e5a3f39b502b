"""The benchmark registry: names -> readers, scorers, exporters and LLaVA-1.5's default file layout.

``BENCHMARKS`` is a read-only mapping built once at import. Each :class:`BenchmarkSpec` knows the
files its benchmark needs, relative to ``playground/data/eval/<folder>/`` exactly as LLaVA-1.5's
``scripts/v1_5/eval/*.sh`` expect them, so a data folder prepared for LLaVA works unchanged.
Any file can be overridden per call (e.g. an MMBench *test* TSV instead of the dev one)::

    spec = BENCHMARKS["mmbench_en"]
    questions = spec.read_questions()                       # list[EvalQuestion]
    answers = spec.answers_path("piip-llava-7b")            # where LLaVA would write answers
    results = spec.score(answers)                           # dict, see each module's ``score``
    upload = spec.export(answers, model_name="piip-llava-7b")

All benchmarks are generated greedily (temperature 0) with the ``vicuna_v1`` template; only the
``max_new_tokens`` budget differs (LLaVA's scripts: 128 for ``model_vqa_loader``, 1024 for
``model_vqa_mmbench`` / ``model_vqa_science`` / ``model_vqa``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from . import gqa, mmbench, mme, mmvet, pope, scienceqa, seed, textvqa, vizwiz, vqav2
from .common import EvalQuestion, PathLike

DEFAULT_EVAL_ROOT = Path("playground/data/eval")
"""LLaVA's data root, relative to the working directory."""

Paths = Mapping[str, Path]
Reader = Callable[[Paths], "list[EvalQuestion]"]
Scorer = Callable[[Path, Paths], dict]
Exporter = Callable[[Path, Paths, Path], Path]


@dataclass(frozen=True)
class BenchmarkSpec:
    """How to run, score and submit one benchmark.

    Attributes:
        name: registry key (also the CLI name, ``piip-llava eval NAME``).
        title: human-readable name.
        folder: data folder under the eval root (``playground/data/eval/<folder>``).
        files: role -> path relative to ``folder`` (roles are the keyword arguments of the
            benchmark module's functions: ``question_file``, ``image_folder``, ...).
        answers_template: answers file relative to ``folder``; ``{model}`` is the model name.
        export_template: submission / converted file relative to ``folder`` (``None``: no export).
        max_new_tokens: generation budget LLaVA-1.5 used.
        main_metric: the results key LLaVA-1.5 reports (also in ``results["main_score"]``).
    """

    name: str
    title: str
    folder: str
    files: Mapping[str, str]
    answers_template: str
    max_new_tokens: int
    main_metric: str | None
    reader: Reader = field(repr=False)
    scorer: Scorer | None = field(default=None, repr=False)
    exporter: Exporter | None = field(default=None, repr=False)
    export_template: str | None = None

    def paths(self, eval_root: PathLike = DEFAULT_EVAL_ROOT, **overrides: PathLike) -> dict[str, Path]:
        """Absolute-or-relative paths of every file role, with ``overrides`` applied."""
        unknown = set(overrides) - set(self.files)
        if unknown:
            raise TypeError(f"{self.name} has no file role(s) {sorted(unknown)}; roles: {sorted(self.files)}")
        base = Path(eval_root) / self.folder
        resolved = {role: base / rel for role, rel in self.files.items()}
        resolved.update({role: Path(p) for role, p in overrides.items()})
        return resolved

    def read_questions(
        self, eval_root: PathLike = DEFAULT_EVAL_ROOT, **overrides: PathLike
    ) -> list[EvalQuestion]:
        """The questions to generate answers for, in file order."""
        return self.reader(self.paths(eval_root, **overrides))

    def answers_path(self, model_name: str, eval_root: PathLike = DEFAULT_EVAL_ROOT) -> Path:
        """Where LLaVA-1.5's script writes (merged) answers for ``model_name``."""
        return Path(eval_root) / self.folder / self.answers_template.format(model=model_name)

    @property
    def can_score(self) -> bool:
        return self.scorer is not None

    @property
    def can_export(self) -> bool:
        return self.exporter is not None

    def score(
        self, answers_file: PathLike, eval_root: PathLike = DEFAULT_EVAL_ROOT, **overrides: PathLike
    ) -> dict:
        """Score an answers file locally; raises ``NotImplementedError`` for server-only benchmarks."""
        if self.scorer is None:
            raise NotImplementedError(
                f"{self.title} has no local ground truth; use export() and submit the file "
                "(see eval/README.md)."
            )
        results = self.scorer(Path(answers_file), self.paths(eval_root, **overrides))
        return {**results, "benchmark": self.name}

    def export(
        self,
        answers_file: PathLike,
        out_file: PathLike | None = None,
        *,
        model_name: str | None = None,
        eval_root: PathLike = DEFAULT_EVAL_ROOT,
        **overrides: PathLike,
    ) -> Path:
        """Write the submission / converted file; defaults to LLaVA's location for ``model_name``."""
        if self.exporter is None or self.export_template is None:
            raise NotImplementedError(f"{self.title} is scored locally; it has no submission file.")
        if out_file is None:
            if model_name is None:
                model_name = _model_name_from_answers(Path(answers_file))
            out_file = Path(eval_root) / self.folder / self.export_template.format(model=model_name)
        return self.exporter(Path(answers_file), self.paths(eval_root, **overrides), Path(out_file))


def _model_name_from_answers(answers_file: Path) -> str:
    # LLaVA names answers either <model>.jsonl or <model>/merge.jsonl.
    return answers_file.parent.name if answers_file.stem == "merge" else answers_file.stem


def _spec(**kwargs: Any) -> BenchmarkSpec:
    kwargs["files"] = MappingProxyType(dict(kwargs["files"]))
    return BenchmarkSpec(**kwargs)


_MMBENCH_EN_SPLIT = "mmbench_dev_20230712"
_MMBENCH_CN_SPLIT = "mmbench_dev_cn_20231003"
_GQA_SPLIT = "llava_gqa_testdev_balanced"
_VQAV2_SPLIT = "llava_vqav2_mscoco_test-dev2015"


def _build() -> Mapping[str, BenchmarkSpec]:
    specs = [
        _spec(
            name="textvqa",
            title="TextVQA val (with OCR tokens)",
            folder="textvqa",
            files={
                "question_file": "llava_textvqa_val_v051_ocr.jsonl",
                "image_folder": "train_images",
                "annotation_file": "TextVQA_0.5.1_val.json",
            },
            answers_template="answers/{model}.jsonl",
            max_new_tokens=128,
            main_metric="accuracy",
            reader=lambda p: textvqa.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: textvqa.score(a, p["annotation_file"]),
        ),
        _spec(
            name="textvqa_no_ocr",
            title="TextVQA val (no OCR tokens in the prompt)",
            folder="textvqa",
            files={
                "question_file": "llava_textvqa_val_v051_ocr.jsonl",
                "image_folder": "train_images",
                "annotation_file": "TextVQA_0.5.1_val.json",
            },
            answers_template="answers_no_ocr/{model}.jsonl",
            max_new_tokens=128,
            main_metric="accuracy",
            reader=lambda p: textvqa.read_questions(p["question_file"], p["image_folder"], no_ocr=True),
            scorer=lambda a, p: textvqa.score(a, p["annotation_file"]),
        ),
        _spec(
            name="mmbench_en",
            title="MMBench (English, dev)",
            folder="mmbench",
            files={"tsv_file": f"{_MMBENCH_EN_SPLIT}.tsv"},
            answers_template=f"answers/{_MMBENCH_EN_SPLIT}/{{model}}.jsonl",
            export_template=f"answers_upload/{_MMBENCH_EN_SPLIT}/{{model}}.xlsx",
            max_new_tokens=1024,
            main_metric="accuracy",
            reader=lambda p: mmbench.read_questions(p["tsv_file"], lang="en"),
            scorer=lambda a, p: mmbench.score(a, p["tsv_file"]),
            exporter=lambda a, p, out: mmbench.export_submission(a, p["tsv_file"], out),
        ),
        _spec(
            name="mmbench_cn",
            title="MMBench-CN (Chinese, dev)",
            folder="mmbench_cn",
            files={"tsv_file": f"{_MMBENCH_CN_SPLIT}.tsv"},
            answers_template=f"answers/{_MMBENCH_CN_SPLIT}/{{model}}.jsonl",
            export_template=f"answers_upload/{_MMBENCH_CN_SPLIT}/{{model}}.xlsx",
            max_new_tokens=1024,
            main_metric="accuracy",
            reader=lambda p: mmbench.read_questions(p["tsv_file"], lang="cn"),
            scorer=lambda a, p: mmbench.score(a, p["tsv_file"]),
            exporter=lambda a, p, out: mmbench.export_submission(a, p["tsv_file"], out),
        ),
        _spec(
            name="pope",
            title="POPE (COCO adversarial / popular / random)",
            folder="pope",
            files={
                "question_file": "llava_pope_test.jsonl",
                "image_folder": "val2014",
                "annotation_dir": "coco",
            },
            answers_template="answers/{model}.jsonl",
            max_new_tokens=128,
            main_metric="f1",
            reader=lambda p: pope.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: pope.score(a, p["question_file"], p["annotation_dir"]),
        ),
        _spec(
            name="scienceqa",
            title="ScienceQA-IMG (test)",
            folder="scienceqa",
            files={
                "question_file": "llava_test_CQM-A.json",
                "image_folder": "images/test",
                "base_dir": ".",
            },
            answers_template="answers/{model}.jsonl",
            max_new_tokens=1024,
            main_metric="img_accuracy",
            reader=lambda p: scienceqa.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: scienceqa.score(a, p["base_dir"]),
        ),
        _spec(
            name="seed",
            title="SEED-Bench",
            folder="seed_bench",
            files={
                "question_file": "llava-seed-bench.jsonl",
                "image_folder": ".",
                "annotation_file": "SEED-Bench.json",
            },
            answers_template="answers/{model}/merge.jsonl",
            export_template="answers_upload/{model}.jsonl",
            max_new_tokens=128,
            main_metric="image_accuracy",
            reader=lambda p: seed.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: seed.score(a, p["annotation_file"]),
            exporter=lambda a, p, out: seed.export_submission(a, p["annotation_file"], out),
        ),
        _spec(
            name="gqa",
            title="GQA testdev-balanced",
            folder="gqa",
            files={
                "question_file": f"{_GQA_SPLIT}.jsonl",
                "image_folder": "data/images",
                "questions_file": "data/testdev_balanced_questions.json",
            },
            answers_template=f"answers/{_GQA_SPLIT}/{{model}}/merge.jsonl",
            export_template="data/testdev_balanced_predictions.json",
            max_new_tokens=128,
            main_metric="accuracy",
            reader=lambda p: gqa.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: gqa.score(a, p["questions_file"]),
            exporter=lambda a, p, out: gqa.export_predictions(a, out),
        ),
        _spec(
            name="mme",
            title="MME",
            folder="MME",
            files={
                "question_file": "llava_mme.jsonl",
                "image_folder": "MME_Benchmark_release_version",
                "data_root": "MME_Benchmark_release_version",
            },
            answers_template="answers/{model}.jsonl",
            export_template="eval_tool/answers/{model}",
            max_new_tokens=128,
            main_metric="perception",
            reader=lambda p: mme.read_questions(p["question_file"], p["image_folder"]),
            scorer=lambda a, p: mme.score(a, p["data_root"]),
            exporter=lambda a, p, out: mme.export_eval_tool(a, p["data_root"], out),
        ),
        _spec(
            name="vqav2",
            title="VQAv2 test-dev (EvalAI submission)",
            folder="vqav2",
            files={
                "question_file": f"{_VQAV2_SPLIT}.jsonl",
                "image_folder": "test2015",
                "test_split_file": "llava_vqav2_mscoco_test2015.jsonl",
            },
            answers_template=f"answers/{_VQAV2_SPLIT}/{{model}}/merge.jsonl",
            export_template=f"answers_upload/{_VQAV2_SPLIT}/{{model}}.json",
            max_new_tokens=128,
            main_metric=None,
            reader=lambda p: vqav2.read_questions(p["question_file"], p["image_folder"]),
            exporter=lambda a, p, out: vqav2.export_submission(a, p["test_split_file"], out),
        ),
        _spec(
            name="vizwiz",
            title="VizWiz-VQA test (EvalAI submission)",
            folder="vizwiz",
            files={"question_file": "llava_test.jsonl", "image_folder": "test"},
            answers_template="answers/{model}.jsonl",
            export_template="answers_upload/{model}.json",
            max_new_tokens=128,
            main_metric=None,
            reader=lambda p: vizwiz.read_questions(p["question_file"], p["image_folder"]),
            exporter=lambda a, p, out: vizwiz.export_submission(a, p["question_file"], out),
        ),
        _spec(
            name="mmvet",
            title="MM-Vet (GPT-4 graded)",
            folder="mm-vet",
            files={"question_file": "llava-mm-vet.jsonl", "image_folder": "images"},
            answers_template="answers/{model}.jsonl",
            export_template="results/{model}.json",
            max_new_tokens=1024,
            main_metric=None,
            reader=lambda p: mmvet.read_questions(p["question_file"], p["image_folder"]),
            exporter=lambda a, p, out: mmvet.export_submission(a, out),
        ),
    ]
    return MappingProxyType({s.name: s for s in specs})


BENCHMARKS: Mapping[str, BenchmarkSpec] = _build()
"""Read-only ``{name: BenchmarkSpec}``; see the module docstring."""


class UnknownBenchmarkError(KeyError):
    """A benchmark name that is not in :data:`BENCHMARKS`."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0])


def get_benchmark(name: str) -> BenchmarkSpec:
    """Look a benchmark up by name with a helpful error listing the valid names."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise UnknownBenchmarkError(
            f"unknown benchmark {name!r}; choose one of: {', '.join(BENCHMARKS)}"
        ) from None


__all__ = ["BENCHMARKS", "DEFAULT_EVAL_ROOT", "BenchmarkSpec", "UnknownBenchmarkError", "get_benchmark"]
