"""The generation engine every benchmark shares: batched, sharded, resumable, ordered.

One code path turns a benchmark's :class:`~piip_llava.eval.benchmarks.EvalQuestion` list into a
LLaVA answers JSONL, so the prompts, the padding and the stopping rules cannot drift between
benchmarks (LLaVA-1.5 has three near-copies of its generation loop for that reason). Design goals:

* **Batched.** Questions are generated ``batch_size`` at a time with left padding through
  :class:`piip_llava.inference.Generator` (the one path chat, demo and the HTTP API also use);
  greedy by default, as LLaVA-1.5 evaluates. Images for the next batch are decoded on worker
  threads while the current batch generates.
* **Never loses or duplicates an answer.** Answers are appended to the JSONL after every batch and
  ``flush`` + ``fsync``-ed, so a killed run keeps everything it finished. On start the existing
  file is read: answered questions are skipped, a truncated last line (the only damage a kill can
  do to an append-only file) is dropped and regenerated, anything else malformed is an error that
  names the line. An answer matching no question of the run is an error too, never silently kept.
* **Sharded.** ``num_chunks`` / ``chunk_idx`` split the questions into LLaVA's contiguous chunks
  (:func:`split_list`), each written to its own file (LLaVA's ``{num_chunks}_{idx}.jsonl``).
  Under ``torchrun`` / ``accelerate launch`` (``RANK`` / ``WORLD_SIZE`` in the environment) every
  rank takes its chunk automatically, and rank 0 waits until every shard *file* is complete, then
  merges. The barrier is the files' content, not a collective: no process group is needed, stale
  marker files cannot fool it, and a slow rank cannot trip an NCCL timeout.
* **Deterministic order.** Merged (and finished unsharded) answers files are written in question
  order, atomically (temp file + ``os.replace``), whatever order a resumed run produced them in.

Answers are matched to questions by ``(question_id, stored prompt)`` counted as a multiset: TextVQA
reuses image ids as question ids, and MMBench's ``all_rounds`` mode repeats a question verbatim.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, PiipLlavaError
from .benchmarks.common import (
    README_HINT,
    EvalDataError,
    EvalQuestion,
    PathLike,
    UnknownQuestionError,
)
from .benchmarks.registry import DEFAULT_EVAL_ROOT

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class EvalRunError(PiipLlavaError, RuntimeError):
    """A benchmark run cannot go on; the message says why and what to do."""


class MissingImageError(EvalRunError, FileNotFoundError):
    """Questions whose image file does not exist (checked for the whole run before generating)."""


class ImageDecodeError(EvalRunError, ValueError):
    """An image file or embedded image that Pillow cannot decode."""


class IncompleteShardsError(EvalRunError):
    """A merge was asked for while some shard files still lack answers."""


# --------------------------------------------------------------------------------------------
# Sharding
# --------------------------------------------------------------------------------------------


def split_list(items: Sequence[Any], n: int) -> list[list[Any]]:
    """LLaVA's ``split_list``: contiguous chunks of ``ceil(len / n)`` items (possibly fewer than n)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    size = math.ceil(len(items) / n)
    if size == 0:
        return []
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def get_chunk(items: Sequence[Any], n: int, k: int) -> list[Any]:
    """Chunk ``k`` of :func:`split_list` (``items, n``); empty when there are fewer chunks than ``n``.

    LLaVA's ``get_chunk`` raises ``IndexError`` in that case (e.g. 3 questions on 8 GPUs); an empty
    chunk is the useful answer: that rank simply has nothing to do.
    """
    if not 0 <= k < n:
        raise ValueError(f"chunk index {k} out of range for {n} chunks")
    chunks = split_list(items, n)
    return chunks[k] if k < len(chunks) else []


@dataclass(frozen=True)
class Shard:
    """Which contiguous chunk of the questions this process answers.

    Attributes:
        num_chunks: how many chunks the questions are split into (1 = unsharded).
        chunk_idx: this process's chunk.
        launched: ``True`` when the chunking comes from a launcher (``torchrun`` / ``accelerate
            launch``): then every rank runs concurrently and rank 0 waits for the others and merges.
            With a manual ``--num-chunks/--chunk-idx`` split (LLaVA's shell-script pattern) nobody
            waits: a separate ``--score-only`` call merges once all chunks are done.
    """

    num_chunks: int = 1
    chunk_idx: int = 0
    launched: bool = False

    def __post_init__(self) -> None:
        if self.num_chunks < 1:
            raise ConfigError(f"--num-chunks must be >= 1, got {self.num_chunks}.")
        if not 0 <= self.chunk_idx < self.num_chunks:
            raise ConfigError(f"--chunk-idx must be in [0, {self.num_chunks - 1}], got {self.chunk_idx}.")

    @property
    def sharded(self) -> bool:
        return self.num_chunks > 1

    @property
    def merges(self) -> bool:
        """Whether this process produces the merged answers file (and should score it)."""
        return not self.sharded or (self.launched and self.chunk_idx == 0)

    def describe(self) -> str:
        if not self.sharded:
            return "unsharded"
        how = "rank" if self.launched else "chunk"
        return f"{how} {self.chunk_idx}/{self.num_chunks}"

    @classmethod
    def from_env(
        cls,
        num_chunks: int | None = None,
        chunk_idx: int | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Shard:
        """The shard for this process: a launcher's ``RANK``/``WORLD_SIZE``, or the explicit split.

        Giving both (``--num-chunks`` under ``torchrun`` with several processes) is ambiguous and
        raises :class:`~piip_llava.errors.ConfigError`.
        """
        env = os.environ if environ is None else environ
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world > 1:
            if (num_chunks or 1) > 1 or chunk_idx not in (None, 0):
                raise ConfigError(
                    f"launched with WORLD_SIZE={world} (torchrun / accelerate launch): each rank takes its "
                    "chunk automatically; drop --num-chunks/--chunk-idx."
                )
            return cls(world, int(env.get("RANK", "0")), launched=True)
        if num_chunks is None or num_chunks == 1:
            if chunk_idx not in (None, 0):
                raise ConfigError("--chunk-idx needs --num-chunks.")
            return cls()
        if chunk_idx is None:
            raise ConfigError(
                f"--num-chunks {num_chunks} needs --chunk-idx (which chunk this process answers), or "
                "--score-only to merge finished chunks and score them."
            )
        return cls(num_chunks, chunk_idx)


def device_for_process(device: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """``cuda:LOCAL_RANK`` for a launched multi-process run on GPUs, otherwise ``device`` unchanged."""
    env = os.environ if environ is None else environ
    if int(env.get("WORLD_SIZE", "1") or 1) > 1 and device in (None, "auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            local = int(env.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            return f"cuda:{local}"
    return device


def shard_path(answers_file: PathLike, num_chunks: int, chunk_idx: int) -> Path:
    """Where chunk ``chunk_idx`` of ``num_chunks`` writes: LLaVA's ``{n}_{k}.jsonl`` naming.

    ``.../<model>/merge.jsonl`` -> ``.../<model>/{n}_{k}.jsonl`` (LLaVA's own layout);
    ``.../<model>.jsonl`` -> ``.../<model>/{n}_{k}.jsonl``.
    """
    path = Path(answers_file)
    folder = path.parent if path.name == "merge.jsonl" else path.parent / path.stem
    return folder / f"{num_chunks}_{chunk_idx}.jsonl"


# --------------------------------------------------------------------------------------------
# Answers files
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerLine:
    """One parsed answers-file line and where it is (1-based line number)."""

    line: int
    record: dict[str, Any]


def question_key(question: EvalQuestion) -> tuple[Any, str]:
    """``(question_id, stored prompt)``: what identifies a question's line in an answers file."""
    prompt = question.prompt_text if question.answer_prompt is None else question.answer_prompt
    return (_hashable(question.question_id), prompt)


def record_key(record: Mapping[str, Any]) -> tuple[Any, str]:
    return (_hashable(record["question_id"]), record.get("prompt", ""))


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def read_answer_lines(path: PathLike, *, repair: bool = False) -> list[AnswerLine]:
    """Read an answers JSONL written by this engine (or LLaVA), tolerating an interrupted write.

    A last line without its newline is what a kill during ``write`` leaves: it is ignored when it
    is not a complete JSON object (and, with ``repair=True``, cut from the file so appending can
    resume). Any other malformed line raises :class:`EvalDataError` with its line number: that
    is not damage a kill can cause, so guessing would risk silent data loss.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    out = []
    for lineno, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        out.append(AnswerLine(lineno, _parse_answer_line(raw, p, lineno)))
    if tail.strip():
        lineno = len(lines) + 1
        try:
            record = _parse_answer_line(tail, p, lineno)
        except EvalDataError:
            logger.warning(
                "%s: dropping a truncated last line (%d bytes, an interrupted write); its question is "
                "generated again.", p, len(tail)
            )
            if repair:
                with p.open("r+b") as f:
                    f.truncate(len(data) - len(tail))
                    f.flush()
                    os.fsync(f.fileno())
        else:
            out.append(AnswerLine(lineno, record))
            if repair:
                with p.open("ab") as f:
                    f.write(b"\n")
                    f.flush()
                    os.fsync(f.fileno())
    return out


def _parse_answer_line(raw: bytes, path: Path, lineno: int) -> dict[str, Any]:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EvalDataError(
            f"malformed answers line ({exc}). Only an unterminated last line can come from an "
            "interrupted run; fix or delete this line (or the file, to regenerate everything).",
            path=path,
            line=lineno,
        ) from exc
    if not isinstance(obj, dict) or "question_id" not in obj or "text" not in obj:
        raise EvalDataError(
            "answers lines must be JSON objects with 'question_id' and 'text'.", path=path, line=lineno
        )
    return obj


@dataclass
class Match:
    """Existing answers matched to a question list (see :func:`match_answers`)."""

    answers: list[dict[str, Any] | None]
    """Per question position: its answer record, or ``None`` if still to generate."""
    strays: list[AnswerLine]
    """Lines that match no (unanswered) question of the list."""

    @property
    def pending(self) -> list[int]:
        return [i for i, a in enumerate(self.answers) if a is None]

    @property
    def num_answered(self) -> int:
        return sum(a is not None for a in self.answers)

    @property
    def complete(self) -> bool:
        return not self.strays and all(a is not None for a in self.answers)

    def raise_for_strays(self, path: PathLike, questions: Sequence[EvalQuestion]) -> None:
        if not self.strays:
            return
        first = self.strays[0]
        qid = first.record["question_id"]
        known_ids = {question_key(q)[0] for q in questions}
        if _hashable(qid) in known_ids:
            why = (
                f"question_id {qid!r} is answered more often than it is asked (or with a different "
                "prompt)"
            )
        else:
            why = f"question_id {qid!r} is not a question of this run"
        raise UnknownQuestionError(
            f"{why}; {len(self.strays)} such line(s). The file was written for other questions "
            "(another question file, --limit or chunking). Delete it (or pass --overwrite) to regenerate.",
            path=path,
            line=first.line,
        )


def match_answers(questions: Sequence[EvalQuestion], lines: Sequence[AnswerLine]) -> Match:
    """Assign each answer line to the first unanswered question with the same key, in order."""
    slots: dict[tuple[Any, str], collections.deque[int]] = collections.defaultdict(collections.deque)
    for i, q in enumerate(questions):
        slots[question_key(q)].append(i)
    answers: list[dict[str, Any] | None] = [None] * len(questions)
    strays = []
    for line in lines:
        queue = slots.get(record_key(line.record))
        if not queue:
            strays.append(line)
            continue
        answers[queue.popleft()] = line.record
    return Match(answers, strays)


class AnswerWriter:
    """Append-only JSONL writer that makes every batch durable (``flush`` + ``fsync``)."""

    def __init__(self, path: PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        # One write call per batch: a kill leaves at most one partial line, at the end.
        self._file.write("".join(json.dumps(r) + "\n" for r in records))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AnswerWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_jsonl_atomic(path: PathLike, records: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``records`` to ``path`` so that readers see either the old or the complete new file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)
    return p


def answers_status(questions: Sequence[EvalQuestion], path: PathLike) -> Match:
    """How far ``path`` answers ``questions`` (read-only; tolerates a file being appended to)."""
    return match_answers(questions, read_answer_lines(path))


def merge_shards(
    questions: Sequence[EvalQuestion],
    answers_file: PathLike,
    num_chunks: int,
    *,
    wait_timeout_s: float = 0.0,
    poll_interval_s: float = 2.0,
    failures_since: float | None = None,
) -> Path:
    """Merge the ``num_chunks`` shard files of ``answers_file`` into it, in question order.

    Waits up to ``wait_timeout_s`` for every shard to hold all of its chunk's answers (rank 0 of a
    launched run waits for its peers this way), then raises :class:`IncompleteShardsError` listing
    each unfinished shard. With ``failures_since`` (a ``time.time()``), a peer's failure marker
    written after that moment (see :func:`failure_marker`) ends the wait at once with its message.
    """
    chunks = [get_chunk(questions, num_chunks, k) for k in range(num_chunks)]
    paths = [shard_path(answers_file, num_chunks, k) for k in range(num_chunks)]
    deadline = time.monotonic() + wait_timeout_s
    while True:
        statuses = [answers_status(chunk, path) for chunk, path in zip(chunks, paths)]
        for chunk, path, status in zip(chunks, paths, statuses):
            status.raise_for_strays(path, chunk)
        if all(s.complete for s in statuses):
            break
        if failures_since is not None:
            for k, path in enumerate(paths):
                marker = failure_marker(path)
                if marker.is_file() and marker.stat().st_mtime >= failures_since - 1.0:
                    raise IncompleteShardsError(
                        f"cannot merge {answers_file}: chunk {k} failed: "
                        f"{marker.read_text(encoding='utf-8').strip()} Fix it and rerun (finished answers are kept)."
                    )
        if time.monotonic() >= deadline:
            todo = [
                f"chunk {k}: {s.num_answered}/{len(c)} answered ({p})"
                for k, (c, p, s) in enumerate(zip(chunks, paths, statuses))
                if not s.complete
            ]
            raise IncompleteShardsError(
                f"cannot merge {answers_file}: {len(todo)} of {num_chunks} shard(s) unfinished: "
                + "; ".join(todo)
                + ". Run (or resume) those chunks with --num-chunks/--chunk-idx, then merge again."
            )
        time.sleep(poll_interval_s)
    merged = [record for status in statuses for record in status.answers]
    return write_jsonl_atomic(answers_file, merged)  # type: ignore[arg-type]


def failure_marker(shard_file: PathLike) -> Path:
    """``{n}_{k}.failed`` next to a shard: a launched rank that fails leaves its error here, so rank 0
    stops waiting for it instead of running into the merge timeout."""
    return Path(shard_file).with_suffix(".failed")


# --------------------------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------------------------


@dataclass
class EngineConfig:
    """Generation and bookkeeping settings for :class:`EvalEngine`.

    Attributes:
        batch_size: questions per ``generate`` call (left-padded). LLaVA-1.5 used 1.
        max_new_tokens: generation budget; ``None`` = the benchmark's (LLaVA's) budget.
        temperature: 0 = greedy (LLaVA-1.5's protocol); > 0 samples with ``top_p``.
        top_p: nucleus sampling mass (only when sampling).
        num_beams: beam search width (1 = none).
        seed: sampling seed; re-seeded per batch from the batch's first question position so a
            resumed run samples the same way for the same batch boundaries.
        model_id: written into every answer's ``model_id`` (default: the model folder's name).
        template: conversation template name overriding the loaded model's.
        num_workers: threads decoding the next batch's images while the current one generates.
        progress: show a tqdm bar (answers/s).
        merge_timeout_s: how long rank 0 of a launched run waits for the other ranks' shards.
        poll_interval_s: how often it re-reads them.
    """

    batch_size: int = 8
    max_new_tokens: int | None = None
    temperature: float = 0.0
    top_p: float = 1.0
    num_beams: int = 1
    seed: int = 0
    model_id: str | None = None
    template: str | None = None
    num_workers: int = 2
    progress: bool = True
    merge_timeout_s: float = 6 * 3600.0
    poll_interval_s: float = 2.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}.")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}.")
        if self.temperature < 0:
            raise ConfigError(f"--temperature must be >= 0, got {self.temperature}.")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}.")
        if self.num_beams < 1:
            raise ConfigError(f"--num-beams must be >= 1, got {self.num_beams}.")


@dataclass
class RunResult:
    """What one :meth:`EvalEngine.run` did.

    ``answers_file`` is the merged answers file when ``merged`` is true; otherwise (a shard that
    does not merge, or a run stopped early) it is the file this process wrote.
    """

    name: str
    answers_file: Path
    shard: Shard
    num_questions: int
    """Questions of this process's chunk."""
    resumed: int
    """Answers found on disk at start (not regenerated)."""
    generated: int
    """Answers generated by this call."""
    seconds: float
    """Wall time spent generating."""
    complete: bool
    """This process's chunk is fully answered."""
    merged: bool
    """``answers_file`` holds every question of the benchmark, in order."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def answers_per_second(self) -> float | None:
        return self.generated / self.seconds if self.generated and self.seconds > 0 else None


def check_images(questions: Sequence[EvalQuestion], name: str) -> None:
    """Fail before generating if any image file is missing, naming question ids and paths."""
    missing = [
        (q.question_id, q.image)
        for q in questions
        if isinstance(q.image, (str, os.PathLike)) and not Path(q.image).is_file()
    ]
    if missing:
        shown = "; ".join(f"question {qid!r}: {path}" for qid, path in missing[:5])
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise MissingImageError(
            f"{name}: {len(missing)} image file(s) not found: {shown}{more}. Check the benchmark's "
            f"image folder (--eval-root / --file image_folder=...). {README_HINT}"
        )


def load_image(question: EvalQuestion, name: str):
    """Decode one question's image (RGB), with errors that name the question and the source."""
    if question.image is None:
        return None
    source = (
        f"{len(question.image)} bytes embedded in the question file"
        if isinstance(question.image, (bytes, bytearray))
        else str(question.image)
    )
    try:
        image = question.open_image()
        image.load()
    except FileNotFoundError as exc:
        raise MissingImageError(f"{name}: question {question.question_id!r}: image not found: {source}.") from exc
    except OSError as exc:  # PIL.UnidentifiedImageError and truncated files are OSErrors
        raise ImageDecodeError(
            f"{name}: question {question.question_id!r}: cannot decode image {source} ({exc})."
        ) from exc
    return image


class EvalEngine:
    """Runs questions through one loaded model; see the module docstring for the guarantees.

    ``loaded`` is a :class:`piip_llava.inference.LoadedModel`. Typical use::

        engine = EvalEngine(load_pretrained_model(path), EngineConfig(batch_size=16))
        result = engine.run_benchmark(get_benchmark("textvqa"), model_name="piip-llava-7b")
    """

    def __init__(self, loaded: Any, config: EngineConfig | None = None):
        from ..inference import Generator

        self.config = config or EngineConfig()
        if self.config.template is not None:
            from ..data.templates import get_template

            loaded = replace(loaded, template=get_template(self.config.template))
        self.loaded = loaded
        self.generator = Generator(loaded)

    @property
    def model_id(self) -> str:
        return self.config.model_id or self.loaded.name

    # ---- public entry points -------------------------------------------------------------

    def run_benchmark(
        self,
        spec: Any,
        *,
        model_name: str | None = None,
        eval_root: PathLike = DEFAULT_EVAL_ROOT,
        files: Mapping[str, PathLike] | None = None,
        limit: int | None = None,
        answers_file: PathLike | None = None,
        shard: Shard | None = None,
        overwrite: bool = False,
        max_batches: int | None = None,
    ) -> RunResult:
        """Generate a registry benchmark's answers into LLaVA's answers location (or ``answers_file``)."""
        questions = select_questions(spec.read_questions(eval_root, **dict(files or {})), limit)
        model_name = model_name or self.model_id
        target = Path(answers_file) if answers_file is not None else spec.answers_path(model_name, eval_root)
        return self.run(
            questions,
            target,
            name=spec.name,
            max_new_tokens=self.config.max_new_tokens or spec.max_new_tokens,
            shard=shard,
            overwrite=overwrite,
            max_batches=max_batches,
        )

    def run(
        self,
        questions: Sequence[EvalQuestion],
        answers_file: PathLike,
        *,
        name: str = "eval",
        max_new_tokens: int | None = None,
        shard: Shard | None = None,
        overwrite: bool = False,
        max_batches: int | None = None,
        on_batch: Callable[[int, list[dict[str, Any]]], None] | None = None,
    ) -> RunResult:
        """Answer ``questions`` into ``answers_file`` (resuming), merging shards where this process should.

        ``max_batches`` stops after that many batches, as a killed run would (for smoke tests and
        the resume tests); ``on_batch(batch_index, records)`` is called after each durable write.
        """
        shard = shard or Shard()
        final = Path(answers_file)
        _check_hashable_ids(questions, name)
        chunk = get_chunk(questions, shard.num_chunks, shard.chunk_idx)
        work_file = shard_path(final, shard.num_chunks, shard.chunk_idx) if shard.sharded else final

        if overwrite:
            work_file.unlink(missing_ok=True)
            if shard.merges:
                final.unlink(missing_ok=True)
        elif shard.sharded and answers_status(questions, final).complete:
            # A finished merged file from an earlier run: nothing to do for any rank.
            logger.info("%s: %s already holds all %d answers", name, final, len(questions))
            return RunResult(name, final, shard, len(chunk), len(chunk), 0, 0.0, True, True)

        started = time.time()
        marker = failure_marker(work_file)
        if shard.launched:
            marker.unlink(missing_ok=True)
        try:
            match = match_answers(chunk, read_answer_lines(work_file, repair=True))
            match.raise_for_strays(work_file, chunk)
            resumed = match.num_answered
            pending = match.pending
            # Launched ranks check every image: a missing one then fails all ranks alike, up front.
            check_images(questions if shard.launched else [chunk[i] for i in pending], name)
            generated, seconds, stopped = self._generate(
                chunk, pending, work_file, name, max_new_tokens, shard, resumed, max_batches, on_batch
            )
        except Exception as error:
            if shard.launched and not shard.merges:
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"{type(error).__name__}: {error}", encoding="utf-8")
            raise
        complete = not stopped
        merged = False
        result_file = work_file
        if complete and not shard.sharded:
            _finalize_order(chunk, final)
            merged = True
        elif complete and shard.merges:
            result_file = merge_shards(
                questions,
                final,
                shard.num_chunks,
                wait_timeout_s=self.config.merge_timeout_s,
                poll_interval_s=self.config.poll_interval_s,
                failures_since=started,
            )
            merged = True
        return RunResult(name, result_file, shard, len(chunk), resumed, generated, seconds, complete, merged)

    # ---- internals -----------------------------------------------------------------------

    def _generate(
        self,
        chunk: Sequence[EvalQuestion],
        pending: list[int],
        work_file: Path,
        name: str,
        max_new_tokens: int | None,
        shard: Shard,
        resumed: int,
        max_batches: int | None,
        on_batch: Callable[[int, list[dict[str, Any]]], None] | None,
    ) -> tuple[int, float, bool]:
        """Generate the pending questions batch by batch; returns (count, seconds, stopped_early)."""
        import torch
        from tqdm.auto import tqdm

        from ..inference import GenerationOptions, user_message

        cfg = self.config
        options = GenerationOptions(
            max_new_tokens=max_new_tokens or cfg.max_new_tokens or 128,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            num_beams=cfg.num_beams,
        )
        batches = [pending[i : i + cfg.batch_size] for i in range(0, len(pending), cfg.batch_size)]
        if max_batches is not None:
            stopped = max_batches < len(batches)
            batches = batches[:max_batches]
        else:
            stopped = False
        if not batches:
            return 0, 0.0, stopped

        desc = name if not shard.sharded else f"{name} [{shard.describe()}]"
        bar = tqdm(
            total=len(chunk), initial=resumed, desc=desc, unit="ans", dynamic_ncols=True,
            disable=not cfg.progress or (shard.launched and shard.chunk_idx != 0),
        )
        generated = 0
        start = time.perf_counter()
        try:
            with concurrent.futures.ThreadPoolExecutor(max(1, cfg.num_workers)) as pool, AnswerWriter(work_file) as writer:
                def load(batch: list[int]) -> list[concurrent.futures.Future]:
                    return [pool.submit(load_image, chunk[i], name) for i in batch]

                upcoming = load(batches[0])
                for b, batch in enumerate(batches):
                    images = [f.result() for f in upcoming]
                    if b + 1 < len(batches):
                        upcoming = load(batches[b + 1])  # decode ahead while this batch generates
                    questions = [chunk[i] for i in batch]
                    conversations = [
                        [user_message(q.prompt_text, 0 if img is None else 1)] for q, img in zip(questions, images)
                    ]
                    if cfg.temperature > 0:
                        torch.manual_seed(cfg.seed + batch[0])
                    texts = self.generator.generate(
                        conversations, [[] if img is None else [img] for img in images], options
                    )
                    records = [q.answer_record(t, self.model_id) for q, t in zip(questions, texts)]
                    writer.write(records)
                    generated += len(records)
                    bar.update(len(records))
                    if on_batch is not None:
                        on_batch(b, records)
        finally:
            bar.close()
        seconds = time.perf_counter() - start
        return generated, seconds, stopped


def select_questions(questions: Sequence[EvalQuestion], limit: int | None) -> list[EvalQuestion]:
    """The first ``limit`` questions (all when ``None``); applied *before* chunking, so the shards of
    a limited run merge to exactly the limited unsharded run."""
    if limit is None:
        return list(questions)
    if limit < 1:
        raise ConfigError(f"--limit must be >= 1, got {limit}.")
    return list(questions[:limit])


def _check_hashable_ids(questions: Sequence[EvalQuestion], name: str) -> None:
    # Repeated (question_id, prompt) pairs are fine (matched by count); an unhashable id is not.
    for q in questions:
        try:
            hash(question_key(q))
        except TypeError as exc:
            raise EvalDataError(f"{name}: question_id {q.question_id!r} is not a JSON scalar ({exc}).") from exc


def _finalize_order(questions: Sequence[EvalQuestion], path: Path) -> None:
    """Rewrite a finished unsharded answers file in question order if a resume reordered it."""
    lines = read_answer_lines(path)
    match = match_answers(questions, lines)
    match.raise_for_strays(path, questions)
    ordered = match.answers
    if any(a is None for a in ordered):  # cannot happen after a complete run; be loud if it does
        raise EvalRunError(f"{path}: {len(match.pending)} answer(s) missing after a complete run.")
    if [line.record for line in lines] != ordered:
        write_jsonl_atomic(path, ordered)  # type: ignore[arg-type]


def finalize_answers(
    questions: Sequence[EvalQuestion], answers_file: PathLike, num_chunks: int = 1
) -> Match:
    """For ``--score-only``: merge finished shards (``num_chunks > 1``) and report coverage.

    Returns the :class:`Match` of the (merged) answers file against ``questions``; an answers
    file with answers for other questions raises :class:`UnknownQuestionError`.
    """
    final = Path(answers_file)
    if num_chunks > 1:
        merge_shards(questions, final, num_chunks)
    if not final.is_file():
        raise EvalRunError(
            f"no answers file {final}: generate answers first (drop --score-only), or pass the "
            "--model-name / --num-chunks the answers were generated with."
        )
    match = answers_status(questions, final)
    match.raise_for_strays(final, questions)
    return match


__all__ = [
    "AnswerLine",
    "AnswerWriter",
    "EngineConfig",
    "EvalEngine",
    "EvalRunError",
    "ImageDecodeError",
    "IncompleteShardsError",
    "Match",
    "MissingImageError",
    "RunResult",
    "Shard",
    "answers_status",
    "check_images",
    "device_for_process",
    "failure_marker",
    "finalize_answers",
    "get_chunk",
    "load_image",
    "match_answers",
    "merge_shards",
    "question_key",
    "read_answer_lines",
    "select_questions",
    "shard_path",
    "split_list",
    "write_jsonl_atomic",
]
