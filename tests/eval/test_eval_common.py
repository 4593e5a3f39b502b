"""File-reading errors: every user mistake names the file, the line and the fix."""

from __future__ import annotations

import pytest

from piip_llava.eval.benchmarks.common import (
    EvalDataError,
    EvalQuestion,
    index_answers,
    read_answers,
    read_llava_questions,
)

from .helpers import answer, write_jsonl


def test_malformed_line_names_file_and_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"question_id": 1, "text": "a"}\n{"question_id": 2, "text": \n')
    with pytest.raises(EvalDataError) as err:
        read_answers(path)
    assert f"{path}:2:" in str(err.value)
    assert "malformed JSON" in str(err.value)
    assert err.value.line == 2 and err.value.path == path


def test_non_object_line(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text("[1, 2]\n")
    with pytest.raises(EvalDataError, match=r":1: .*JSON objects"):
        read_answers(path)


def test_missing_key_is_reported(tmp_path):
    path = write_jsonl(tmp_path / "answers.jsonl", [{"question_id": 1}])
    with pytest.raises(EvalDataError, match=r"answers.jsonl:1: .*missing key\(s\) \['text'\]"):
        read_answers(path)


def test_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "answers.jsonl"
    path.write_text('{"question_id": 1, "text": "a"}\n\n{"question_id": 2, "text": "b"}\n\n')
    answers = read_answers(path)
    assert [a.question_id for a in answers] == [1, 2]
    assert [a.line for a in answers] == [1, 3]


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="answers file not found: .*nope.jsonl"):
        read_answers(tmp_path / "nope.jsonl")


def test_duplicate_answers_are_rejected(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [answer(7, "x"), answer(7, "y")])
    with pytest.raises(
        EvalDataError, match=r"a.jsonl:2: question_id 7 is answered twice \(first on line 1\)"
    ):
        index_answers(read_answers(path))


def test_llava_question_reader(tmp_path):
    (tmp_path / "imgs").mkdir()
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {
                "question_id": 3,
                "image": "a.jpg",
                "text": "Q?\nAnswer the question using a single word or phrase.",
                "category": "c",
            }
        ],
    )
    (q,) = read_llava_questions(path, tmp_path / "imgs")
    assert q == EvalQuestion(
        3,
        tmp_path / "imgs" / "a.jpg",
        "Q?\nAnswer the question using a single word or phrase.",
        {"category": "c"},
    )
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        read_llava_questions(path, tmp_path / "missing")


def test_answer_record_layout():
    q = EvalQuestion(5, None, "hello")
    rec = q.answer_record("world", "my-model", answer_id="abc")
    assert rec == {
        "question_id": 5,
        "prompt": "hello",
        "text": "world",
        "answer_id": "abc",
        "model_id": "my-model",
        "metadata": {},
    }
    assert len(q.answer_record("w", "m")["answer_id"]) == 32


def test_open_image_roundtrip(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    import io

    buf = io.BytesIO()
    Image.new("RGBA", (4, 4)).save(buf, format="PNG")
    img = EvalQuestion(1, buf.getvalue(), "x").open_image()
    assert img.mode == "RGB" and img.size == (4, 4)
    assert EvalQuestion(1, None, "x").open_image() is None
    with pytest.raises(FileNotFoundError, match="image file not found"):
        EvalQuestion(1, tmp_path / "nope.png", "x").open_image()
