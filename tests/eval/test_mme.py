"""MME: ground-truth join, reply parsing and the acc / acc+ totals of MME's calculation.py."""

from __future__ import annotations

import pytest

from piip_llava.eval.benchmarks import mme
from piip_llava.eval.benchmarks.common import EvalDataError, MissingAnswersError, UnknownQuestionError

from .helpers import answer, write_jsonl

SUFFIX = "\nAnswer the question using a single word or phrase."


def _make_release(root):
    """One image with a yes- and a no-question per subtask; ``artwork`` uses the images/ layout."""
    for task in mme.PERCEPTION + mme.COGNITION:
        if task == "artwork":
            (root / task / "images").mkdir(parents=True)
            qa_dir = root / task / "questions_answers_YN"
            qa_dir.mkdir()
        else:
            qa_dir = root / task
            qa_dir.mkdir(parents=True)
        sep = "  " if task == "OCR" else " "  # a few MME questions have two spaces
        (qa_dir / "0001.txt").write_text(
            f"Is there a cat?{sep}Please answer yes or no.\tYes\n"
            f"Is there a dog?{sep}Please answer yes or no.\tNo\n"
        )


def _qid(task):
    return f"{task}/images/0001.jpg" if task == "artwork" else f"{task}/0001.jpg"


def _answers(tmp_path, replies):
    rows = []
    for task in mme.PERCEPTION + mme.COGNITION:
        yes_reply, no_reply = replies.get(task, ("Yes", "No"))
        rows.append(answer(_qid(task), yes_reply, prompt="Is there a cat?" + SUFFIX))
        rows.append(answer(_qid(task), no_reply, prompt="Is there a dog?" + SUFFIX))
    return write_jsonl(tmp_path / "answers" / "m.jsonl", rows)


@pytest.fixture
def release(tmp_path):
    root = tmp_path / "MME_Benchmark_release_version"
    _make_release(root)
    return root


def test_parse_reply():
    assert mme.parse_reply("Yes") == "yes"
    assert mme.parse_reply("NO") == "no"
    assert mme.parse_reply("yes, there is") == "yes"
    assert mme.parse_reply("Nope") == "no"
    assert mme.parse_reply("I think no") == "other"  # only the first 4 characters count
    assert mme.parse_reply("know") == "no"
    assert mme.parse_reply("maybe") == "other"


def test_perfect_run_scores_maximum(tmp_path, release):
    r = mme.score(_answers(tmp_path, {}), release)
    assert r["perception"] == 2000 and r["cognition"] == 800
    assert r["main_score"] == 2000
    assert r["samples"] == 28


def test_acc_and_acc_plus(tmp_path, release):
    replies = {
        "existence": ("Yes", "Yes"),  # one wrong: acc 0.5, acc+ 0 -> 50
        "count": ("yes, there is", "Nope"),  # both parsed right -> 200
        "position": ("maybe", "No"),  # "other" is wrong -> 50
        "code_reasoning": ("No", "Yes"),  # both wrong -> 0
    }
    r = mme.score(_answers(tmp_path, replies), release)
    assert r["subtasks"]["existence"] == {
        "questions": 2, "images": 1, "acc": 0.5, "acc_plus": 0.0, "score": 50.0, "other_answers": 0,
    }  # fmt: skip
    assert r["subtasks"]["count"]["score"] == 200.0
    assert r["subtasks"]["position"]["other_answers"] == 1
    assert r["perception"] == 2000 - 150 - 150
    assert r["cognition"] == 600


def test_partial_runs(tmp_path, release):
    path = write_jsonl(
        tmp_path / "a.jsonl",
        [answer("existence/0001.jpg", "Yes", prompt="Is there a cat?" + SUFFIX),
         answer("existence/0001.jpg", "No", prompt="Is there a dog?" + SUFFIX)],
    )  # fmt: skip
    with pytest.raises(MissingAnswersError, match="no answers for MME subtask"):
        mme.score(path, release)
    r = mme.score(path, release, allow_partial=True)
    assert r["perception"] == 200 and "OCR" in r["missing_subtasks"]


def test_unpaired_image(tmp_path, release):
    path = write_jsonl(
        tmp_path / "a.jsonl", [answer("existence/0001.jpg", "Yes", prompt="Is there a cat?" + SUFFIX)]
    )
    with pytest.raises(EvalDataError, match="two questions per image"):
        mme.score(path, release, allow_partial=True)


def test_unknown_question(tmp_path, release):
    path = write_jsonl(
        tmp_path / "a.jsonl", [answer("existence/0001.jpg", "Yes", prompt="Is there a cow?" + SUFFIX)]
    )
    with pytest.raises(
        UnknownQuestionError, match=r"a.jsonl:1: no MME ground truth for 'existence/0001.jpg'"
    ):
        mme.score(path, release, allow_partial=True)


def test_export_eval_tool(tmp_path, release):
    out = mme.export_eval_tool(_answers(tmp_path, {}), release, tmp_path / "eval_tool" / "answers" / "m")
    lines = (out / "OCR.txt").read_text().splitlines()
    assert lines == [
        "0001.txt\tIs there a cat?  Please answer yes or no.\tYes\tYes",
        "0001.txt\tIs there a dog?  Please answer yes or no.\tNo\tNo",
    ]
    assert len(list(out.glob("*.txt"))) == 14


def test_missing_release_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="MME_Benchmark_release_version folder not found"):
        mme.score(tmp_path / "a.jsonl", tmp_path / "nope")
