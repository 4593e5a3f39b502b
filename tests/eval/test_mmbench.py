"""MMBench: LLaVA's prompts, option-letter extraction, circular verdicts and the xlsx export."""

from __future__ import annotations

import json

import pytest

from piip_llava.eval.metrics import infer_option, infer_option_from_text, infer_option_letter

from .helpers import FIXTURES, answer, read_jsonl, write_jsonl

pd = pytest.importorskip("pandas")

from piip_llava.eval.benchmarks import mmbench  # noqa: E402  (needs pandas)
from piip_llava.eval.benchmarks.common import (  # noqa: E402
    EvalDataError,
    MissingAnswersError,
    UnknownQuestionError,
)

DIR = FIXTURES / "mmbench"
TSV = {lang: DIR / f"mmbench_fixture_{lang}.tsv" for lang in ("en", "cn")}
ANSWERS = {lang: DIR / f"mmbench_fixture_{lang}_llava_answers.jsonl" for lang in ("en", "cn")}

CASES = read_jsonl(DIR / "can_infer_cases.jsonl")


@pytest.mark.parametrize("case", CASES, ids=[repr(c["answer"])[:30] for c in CASES])
def test_can_infer_cases(case):
    assert infer_option_letter(case["answer"]) == case["can_infer_option"]
    assert infer_option_from_text(case["answer"], case["choices"]) == case["can_infer_text"]
    assert infer_option(case["answer"], case["choices"]) == case["can_infer"]


def test_case_count():
    assert len(CASES) == 42


@pytest.mark.parametrize(
    ("tag", "lang", "all_rounds"), [("en", "en", False), ("cn", "cn", False), ("allrounds", "en", True)]
)
def test_prompts_and_answer_lines_match_llava(tag, lang, all_rounds):
    questions = mmbench.read_questions(DIR / f"mmbench_fixture_{tag}.tsv", lang=lang, all_rounds=all_rounds)
    expected = read_jsonl(DIR / f"mmbench_fixture_{tag}_llava_answers.jsonl")
    assert len(questions) == len(expected)
    for q, exp in zip(questions, expected):
        # The engine renders vicuna_v1 with "<image>\n" + prompt_text as the user turn.
        assert exp["full_prompt"].endswith(f"USER: <image>\n{q.prompt_text} ASSISTANT:")
        record = q.answer_record(exp["text"], exp["model_id"])
        for key in (
            "question_id",
            "round_id",
            "prompt",
            "text",
            "options",
            "option_char",
            "model_id",
            "metadata",
        ):
            assert record[key] == exp[key], key
        assert isinstance(q.image, bytes) and q.image.startswith(b"\x89PNG")


def test_suffixes():
    en = mmbench.read_questions(TSV["en"])[0].prompt_text
    cn = mmbench.read_questions(TSV["cn"], lang="cn")[0].prompt_text
    assert en.endswith("\nD. dog\nAnswer with the option's letter from the given choices directly.")
    assert cn.endswith("\nD. 狗\n请直接回答选项字母。")
    with pytest.raises(ValueError, match="lang"):
        mmbench.read_questions(TSV["en"], lang="fr")


def test_hint_goes_first_and_options_stop_at_first_gap():
    q = {q.question_id: q for q in mmbench.read_questions(TSV["en"])}[4]
    assert q.answer_prompt == (
        "Read the chart carefully.\nValues are in millions.\nWhich of the following statements is true?"
        "\nA. Sales rose in 2020\nB. Sales fell in 2020\nC. Sales were flat in 2020"
    )


@pytest.mark.parametrize("lang", ["en", "cn"])
def test_per_row_extraction(lang):
    results = mmbench.score(ANSWERS[lang], TSV[lang])
    rows = {r["index"]: r for r in results["rows"]}
    expected = read_jsonl(DIR / f"mmbench_fixture_{lang}_can_infer_per_row.jsonl")
    assert len(rows) == len(expected)
    for exp in expected:
        got = rows[exp["index"]]
        assert got["group"] == exp["group"]
        assert got["answer"] == exp["answer"]
        assert got["prediction"] == exp["prediction"]
        assert got["by_letter"] == exp["can_infer_option"]
        assert got["by_text"] == exp["can_infer_text"]
        assert got["inferred"] == exp["inferred"]
        assert got["correct"] == exp["correct"]


@pytest.mark.parametrize("lang", ["en", "cn"])
def test_circular_verdicts(lang):
    results = mmbench.score(ANSWERS[lang], TSV[lang])
    expected = json.loads((DIR / f"mmbench_fixture_{lang}_circular_verdicts.json").read_text())["groups"]
    assert [g["group"] for g in results["groups"]] == [g["group"] for g in expected]
    for got, exp in zip(results["groups"], expected):
        assert got["indices"] == exp["indices"]
        assert got["answers"] == exp["answers"]
        assert got["inferred"] == exp["inferred"]
        assert got["verdict"] == exp["circular_verdict"]


def test_accuracy_counts_undecided_groups_as_wrong():
    en = mmbench.score(ANSWERS["en"], TSV["en"])
    # 12 groups: 5 right, 3 wrong, 4 need the GPT judge.
    assert en["samples"] == 12
    assert en["judge_required"] == 4
    assert en["accuracy"] == 5 / 12
    assert en["accuracy_if_judged_correct"] == 9 / 12
    assert en["main_score"] == pytest.approx(100 * 5 / 12)
    assert en["category_accuracy"]["image_topic"] == 1.0
    assert en["category_accuracy"]["future_prediction"] == 0.0  # judge_required
    assert en["l2_category_accuracy"]["logic_reasoning"] == 0.5
    cn = mmbench.score(ANSWERS["cn"], TSV["cn"])
    assert (cn["accuracy"], cn["judge_required"]) == (2 / 3, 1)


def test_xlsx_export_matches_llava_layout(tmp_path):
    pytest.importorskip("openpyxl")
    out = mmbench.export_submission(ANSWERS["en"], TSV["en"], tmp_path / "up" / "model.xlsx")
    sheet = pd.read_excel(out)
    assert list(sheet.columns) == ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    preds = {a["question_id"]: a["text"] for a in read_jsonl(ANSWERS["en"])}
    for index, prediction in zip(sheet["index"], sheet["prediction"]):
        expected = preds[index]
        assert (prediction if isinstance(prediction, str) else "") == expected


def test_tsv_without_answers_cannot_be_scored(tmp_path):
    df = pd.read_table(TSV["cn"]).drop(columns=["answer"])
    df.to_csv(tmp_path / "test.tsv", sep="\t", index=False)
    with pytest.raises(EvalDataError, match="no ground-truth 'answer' column"):
        mmbench.score(ANSWERS["cn"], tmp_path / "test.tsv")


def test_missing_column(tmp_path):
    df = pd.read_table(TSV["cn"]).drop(columns=["hint"])
    df.to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(EvalDataError, match=r"bad.tsv: missing column\(s\) \['hint'\]"):
        mmbench.read_questions(tmp_path / "bad.tsv")


def test_unknown_index(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [answer(100, "A"), answer(999, "B")])
    with pytest.raises(UnknownQuestionError, match=r"a.jsonl:2: question_id 999 is not an index"):
        mmbench.score(path, TSV["cn"])


def test_missing_answers(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [answer(100, "A")])
    with pytest.raises(MissingAnswersError, match=r"2 TSV row\(s\) have no answer, e.g. index \[101, 102\]"):
        mmbench.score(path, TSV["cn"])


def test_all_rounds_answers_are_rejected():
    with pytest.raises(EvalDataError, match="--all-rounds"):
        mmbench.score(
            DIR / "mmbench_fixture_allrounds_llava_answers.jsonl", DIR / "mmbench_fixture_allrounds.tsv"
        )


def test_missing_tsv(tmp_path):
    with pytest.raises(FileNotFoundError, match="MMBench TSV file not found"):
        mmbench.read_questions(tmp_path / "mmbench_dev_20230712.tsv")


def test_numeric_option_columns_stay_text(tmp_path):
    df = pd.read_table(TSV["cn"])
    df["A"], df["B"], df["C"], df["D"] = "3", "4", "5", "6"
    df.to_csv(tmp_path / "num.tsv", sep="\t", index=False)
    q = mmbench.read_questions(tmp_path / "num.tsv")[0]
    assert q.answer_prompt.endswith("\nA. 3\nB. 4\nC. 5\nD. 6")
