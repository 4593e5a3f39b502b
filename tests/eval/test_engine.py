"""The generation engine on a tiny random PIIP-LLaVA: batching, resume, shards, merge, errors (CPU)."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from piip_llava.errors import ConfigError, PiipLlavaError
from piip_llava.eval.benchmarks import EvalDataError, EvalQuestion, UnknownQuestionError, get_benchmark
from piip_llava.eval.engine import (
    EngineConfig,
    EvalEngine,
    ImageDecodeError,
    IncompleteShardsError,
    MissingImageError,
    Shard,
    get_chunk,
    merge_shards,
    question_key,
    read_answer_lines,
    shard_path,
    split_list,
)

from . import synthetic
from .helpers import read_jsonl

TOKENIZER = Path(__file__).resolve().parents[1] / "fixtures" / "tokenization" / "tokenizer"
MAX_NEW_TOKENS = 3


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """ONE tiny checkpoint (and loaded model) for the whole module."""
    from piip_llava.inference import load_pretrained_model
    from piip_llava.testing import make_tiny_checkpoint

    path = make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-piip", TOKENIZER)
    return load_pretrained_model(str(path), device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def eval_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    synthetic.write_textvqa(root, n_images=7)  # 8 questions, two share image id 0
    synthetic.write_scienceqa(root)  # one text-only question
    return root


@pytest.fixture(scope="module")
def questions(eval_root):
    return get_benchmark("textvqa").read_questions(eval_root)


def engine(loaded, **overrides) -> EvalEngine:
    config = EngineConfig(batch_size=3, max_new_tokens=MAX_NEW_TOKENS, progress=False, model_id="tiny")
    return EvalEngine(loaded, replace(config, **overrides))


@pytest.fixture(scope="module")
def reference(loaded, questions, tmp_path_factory):
    """One uninterrupted, unsharded batched run: the answers every other run must reproduce."""
    out = tmp_path_factory.mktemp("ref") / "answers.jsonl"
    result = engine(loaded).run(questions, out, name="textvqa")
    assert result.complete and result.merged and result.generated == len(questions) == 8
    return read_jsonl(out)


def texts(records) -> list:
    return [(r["question_id"], r["prompt"], r["text"]) for r in records]


# ---- sharding helpers -----------------------------------------------------------------------


def test_split_list_matches_llava():
    # llava/eval/model_vqa_loader.py: chunk_size = ceil(len / n); contiguous slices.
    assert split_list(list(range(10)), 3) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert split_list(list(range(10)), 4) == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert [get_chunk(list(range(3)), 8, k) for k in range(8)] == [[0], [1], [2], [], [], [], [], []]
    flat = [x for k in range(7) for x in get_chunk(list(range(101)), 7, k)]
    assert flat == list(range(101))


def test_shard_from_env():
    assert Shard.from_env(None, None, {}) == Shard()
    assert Shard.from_env(4, 2, {}) == Shard(4, 2)
    launched = Shard.from_env(None, None, {"WORLD_SIZE": "8", "RANK": "3"})
    assert launched == Shard(8, 3, launched=True) and not launched.merges
    assert Shard.from_env(None, None, {"WORLD_SIZE": "8", "RANK": "0"}).merges
    assert not Shard(4, 0).merges  # a manual chunk never merges on its own
    with pytest.raises(ConfigError, match="drop --num-chunks"):
        Shard.from_env(4, 1, {"WORLD_SIZE": "2", "RANK": "0"})
    with pytest.raises(ConfigError, match="--chunk-idx"):
        Shard.from_env(4, None, {})
    with pytest.raises(ConfigError, match="needs --num-chunks"):
        Shard.from_env(None, 2, {})
    with pytest.raises(ConfigError, match=r"\[0, 3\]"):
        Shard(4, 4)


def test_shard_paths_follow_llava():
    assert shard_path("a/gqa/answers/split/m/merge.jsonl", 8, 3) == Path("a/gqa/answers/split/m/8_3.jsonl")
    assert shard_path("a/pope/answers/m.jsonl", 2, 0) == Path("a/pope/answers/m/2_0.jsonl")


# ---- generation -------------------------------------------------------------------------------


def test_answers_file_layout_and_order(reference, questions):
    assert [r["question_id"] for r in reference] == [q.question_id for q in questions]
    assert reference[0]["question_id"] == reference[1]["question_id"]  # TextVQA repeats image ids
    first = reference[0]
    assert set(first) == {"question_id", "prompt", "text", "answer_id", "model_id", "metadata"}
    assert first["model_id"] == "tiny" and first["prompt"] == questions[0].prompt_text


def test_batched_equals_one_at_a_time(loaded, questions, reference, tmp_path):
    out = tmp_path / "b1.jsonl"
    engine(loaded, batch_size=1).run(questions, out, name="textvqa")
    assert texts(read_jsonl(out)) == texts(reference)


def test_text_only_and_image_questions_share_a_batch(loaded, eval_root, tmp_path):
    spec = get_benchmark("scienceqa")
    result = engine(loaded, batch_size=4).run_benchmark(spec, eval_root=eval_root, answers_file=tmp_path / "sqa.jsonl")
    rows = read_jsonl(result.answers_file)
    assert len(rows) == 4 and rows[-1]["prompt"].startswith("Which is heavier 4?")  # no <image>
    assert rows[0]["prompt"].startswith("<image>\n")
    assert spec.score(result.answers_file, eval_root)["samples"] == 4


# ---- resume -----------------------------------------------------------------------------------


def test_killed_run_resumes_without_loss_or_duplicates(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    stopped = engine(loaded).run(questions, out, name="textvqa", max_batches=1)
    assert not stopped.complete and not stopped.merged and len(read_jsonl(out)) == 3

    def crash(batch_index, records):  # dies right after the first durable batch of the resumed run
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine(loaded).run(questions, out, name="textvqa", on_batch=crash)
    assert len(read_jsonl(out)) == 6
    resumed = engine(loaded).run(questions, out, name="textvqa")
    assert resumed.generated == 2 and resumed.resumed == 6 and resumed.merged
    assert texts(read_jsonl(out)) == texts(reference)


def test_truncated_last_line_is_dropped_and_regenerated(loaded, questions, reference, tmp_path, caplog):
    out = tmp_path / "answers.jsonl"
    lines = [json.dumps(r) for r in reference[:5]]
    out.write_text("\n".join(lines[:4]) + "\n" + lines[4][: len(lines[4]) // 2])  # killed mid-write
    with caplog.at_level(logging.WARNING, logger="piip_llava.eval.engine"):
        result = engine(loaded).run(questions, out, name="textvqa")
    assert "truncated last line" in caplog.text
    assert result.resumed == 4 and result.generated == 4
    rows = read_jsonl(out)
    assert Counter(map(json.dumps, (question_key(q) for q in questions))) == Counter(
        json.dumps((r["question_id"], r["prompt"])) for r in rows
    )
    assert texts(rows) == texts(reference)


def test_complete_last_line_without_newline_is_kept(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_text("\n".join(json.dumps(r) for r in reference[:2]))
    result = engine(loaded).run(questions, out, name="textvqa")
    assert result.resumed == 2 and result.generated == 6
    assert texts(read_jsonl(out)) == texts(reference)


def test_resume_out_of_order_is_rewritten_in_question_order(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_text("".join(json.dumps(r) + "\n" for r in [reference[6], reference[2]]))
    result = engine(loaded).run(questions, out, name="textvqa")
    assert result.resumed == 2 and result.generated == 6
    assert texts(read_jsonl(out)) == texts(reference)


def test_malformed_line_in_the_middle_is_an_error(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    out.write_text(json.dumps(reference[0]) + "\n{not json\n" + json.dumps(reference[1]) + "\n")
    with pytest.raises(EvalDataError, match=r"answers\.jsonl:2: malformed answers line"):
        engine(loaded).run(questions, out, name="textvqa")
    out.write_text(json.dumps({"question_id": 1}) + "\n")
    with pytest.raises(EvalDataError, match=r":1: .*'question_id' and 'text'"):
        read_answer_lines(out)


def test_unknown_question_id_in_existing_answers_is_an_error(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    stray = dict(reference[3], question_id="not-a-question")
    out.write_text(json.dumps(reference[0]) + "\n" + json.dumps(stray) + "\n")
    with pytest.raises(UnknownQuestionError, match=r"answers\.jsonl:2: question_id 'not-a-question' is not a question"):
        engine(loaded).run(questions, out, name="textvqa")
    out.write_text(json.dumps(reference[2]) + "\n" + json.dumps(reference[2]) + "\n")
    with pytest.raises(UnknownQuestionError, match="answered more often than it is asked"):
        engine(loaded).run(questions, out, name="textvqa")
    # --overwrite starts over instead.
    result = engine(loaded).run(questions, out, name="textvqa", overwrite=True)
    assert result.generated == 8 and texts(read_jsonl(out)) == texts(reference)


# ---- shards -----------------------------------------------------------------------------------


def test_two_shards_merged_equal_one_unsharded_run(loaded, questions, reference, tmp_path):
    out = tmp_path / "m" / "merge.jsonl"
    first = engine(loaded).run(questions, out, name="textvqa", shard=Shard(2, 0))
    assert first.complete and not first.merged and first.answers_file == tmp_path / "m" / "2_0.jsonl"
    with pytest.raises(IncompleteShardsError, match=r"chunk 1: 0/4 answered"):
        merge_shards(questions, out, 2)
    engine(loaded).run(questions, out, name="textvqa", shard=Shard(2, 1))
    merge_shards(questions, out, 2)
    assert texts(read_jsonl(out)) == texts(reference)
    # A launched run finds the merged file complete and does nothing.
    again = engine(loaded).run(questions, out, name="textvqa", shard=Shard(2, 1, launched=True))
    assert again.merged and again.generated == 0


def test_launched_ranks_rank0_waits_and_merges(loaded, questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    eng = engine(loaded, poll_interval_s=0.05, merge_timeout_s=120)
    results = {}
    rank0 = threading.Thread(
        target=lambda: results.setdefault(0, eng.run(questions, out, name="textvqa", shard=Shard(2, 0, launched=True)))
    )
    rank0.start()  # finishes its chunk, then polls for rank 1's file
    results[1] = eng.run(questions, out, name="textvqa", shard=Shard(2, 1, launched=True))
    rank0.join(timeout=120)
    assert not results[1].merged and results[0].merged and results[0].answers_file == out
    assert texts(read_jsonl(out)) == texts(reference)


def test_launched_rank_failure_stops_rank0_waiting(loaded, questions, tmp_path):
    bad = EvalQuestion(question_id=99, image=b"not an image", prompt_text="What is it?")
    subset = [*questions[:3], bad]  # rank 1 gets questions[2] and the broken one
    out = tmp_path / "answers.jsonl"
    eng = engine(loaded, batch_size=2, poll_interval_s=0.05, merge_timeout_s=120)
    errors = {}

    def rank0():
        try:
            eng.run(subset, out, name="textvqa", shard=Shard(2, 0, launched=True))
        except IncompleteShardsError as error:
            errors[0] = error

    thread = threading.Thread(target=rank0)
    thread.start()
    with pytest.raises(ImageDecodeError, match="question 99"):
        eng.run(subset, out, name="textvqa", shard=Shard(2, 1, launched=True))
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "chunk 1 failed: ImageDecodeError: textvqa: question 99: cannot decode image" in str(errors[0])


def test_merge_waits_for_a_shard_being_written(questions, reference, tmp_path):
    out = tmp_path / "answers.jsonl"
    chunks = [get_chunk(reference, 2, k) for k in range(2)]
    shard_path(out, 2, 0).parent.mkdir(parents=True)
    shard_path(out, 2, 0).write_text("".join(json.dumps(r) + "\n" for r in chunks[0]))
    partial = json.dumps(chunks[1][0]) + "\n" + json.dumps(chunks[1][1])[:10]  # mid-write
    shard_path(out, 2, 1).write_text(partial)
    timer = threading.Timer(
        0.3, lambda: shard_path(out, 2, 1).write_text("".join(json.dumps(r) + "\n" for r in chunks[1]))
    )
    timer.start()
    merge_shards(questions, out, 2, wait_timeout_s=30, poll_interval_s=0.05)
    timer.join()
    assert texts(read_jsonl(out)) == texts(reference)


# ---- images -----------------------------------------------------------------------------------


def test_missing_image_names_question_and_path_before_generating(loaded, questions, tmp_path):
    gone = replace(questions[5], image=tmp_path / "nowhere" / "img.jpg")
    out = tmp_path / "answers.jsonl"
    with pytest.raises(MissingImageError) as info:
        engine(loaded).run([*questions[:5], gone], out, name="textvqa")
    message = str(info.value)
    assert f"question {gone.question_id!r}" in message and str(tmp_path / "nowhere" / "img.jpg") in message
    assert isinstance(info.value, PiipLlavaError) and isinstance(info.value, FileNotFoundError)
    assert not out.exists()  # checked up front: nothing half-done


def test_undecodable_image_names_the_question(loaded, tmp_path):
    bad = EvalQuestion(question_id=77, image=b"definitely not a png", prompt_text="What is it?")
    with pytest.raises(ImageDecodeError, match=r"question 77: cannot decode image 20 bytes embedded"):
        engine(loaded).run([bad], tmp_path / "answers.jsonl", name="mmbench_en")


def test_engine_config_validation():
    with pytest.raises(ConfigError, match="batch-size"):
        EngineConfig(batch_size=0)
    with pytest.raises(ConfigError, match="top-p"):
        EngineConfig(top_p=0)
