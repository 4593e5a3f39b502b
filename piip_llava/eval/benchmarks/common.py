"""Shared records, file readers and errors for the benchmark layer.

Every benchmark module turns its files into :class:`EvalQuestion` records for the generation
engine and reads the engine's answers back as :class:`Answer` records. The answers file uses
LLaVA's own JSONL layout (``question_id, prompt, text, answer_id, model_id, metadata``), so files
written by the original LLaVA scripts can be scored here and vice versa.

Errors a user can cause (a missing file, a broken JSON line, an id that is in no question file)
raise :class:`EvalDataError` or :class:`FileNotFoundError` with a message that names the file, the
line and what to do, instead of the bare ``KeyError``/``AssertionError`` the reference scripts give.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]
QuestionId = Union[int, str]

SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."
"""Suffix LLaVA-1.5's question files append to short-answer VQA questions."""

README_HINT = "See eval/README.md for where to download each benchmark file."


class EvalDataError(ValueError):
    """A benchmark or answers file has content the scorer cannot use.

    ``path`` and ``line`` (1-based, when the problem is tied to one line) are kept as attributes
    so callers can report them; the message already contains both.
    """

    def __init__(self, message: str, *, path: PathLike | None = None, line: int | None = None):
        location = ""
        if path is not None:
            location = f"{os.fspath(path)}:{line}: " if line is not None else f"{os.fspath(path)}: "
        super().__init__(location + message)
        self.path = None if path is None else Path(path)
        self.line = line


class UnknownQuestionError(EvalDataError):
    """An answer refers to a question id that the benchmark's annotation does not contain."""


class MissingAnswersError(EvalDataError):
    """The answers file lacks answers that the metric needs."""


@dataclass(frozen=True)
class EvalQuestion:
    """One generation request for the engine.

    Attributes:
        question_id: the id LLaVA writes back into the answers file (int or str, kept as given).
        image: a file path, encoded image bytes (MMBench stores base64 PNG/JPEG in its TSV), or
            ``None`` for a text-only question (ScienceQA has some).
        prompt_text: the user turn *without* the ``<image>`` marker. The engine prepends
            ``"<image>\\n"`` when ``image`` is not ``None`` and feeds it as-is otherwise, then renders
            the ``vicuna_v1`` conversation with an empty assistant turn.
        extra: benchmark-specific metadata (category, ground truth, ...). Not needed to generate.
        answer_prompt: what LLaVA stores in the answers file's ``prompt`` field when it differs
            from ``prompt_text`` (MMBench stores the question without the instruction suffix;
            ScienceQA stores ``"<image>\\n" + prompt_text`` for image questions).
        answer_fields: extra keys LLaVA writes into each answer line (MMBench: ``round_id``,
            ``options``, ``option_char``).
    """

    question_id: QuestionId
    image: Path | bytes | None
    prompt_text: str
    extra: Mapping[str, Any] = field(default_factory=dict)
    answer_prompt: str | None = None
    answer_fields: Mapping[str, Any] = field(default_factory=dict)

    def answer_record(self, text: str, model_id: str, *, answer_id: str | None = None) -> dict[str, Any]:
        """Build the answers-file line LLaVA would write for this question and output ``text``.

        ``text`` should already be the decoded, ``strip()``-ed generation, as LLaVA writes it.
        """
        record: dict[str, Any] = {
            "question_id": self.question_id,
            "prompt": self.prompt_text if self.answer_prompt is None else self.answer_prompt,
            "text": text,
        }
        record.update(self.answer_fields)
        record["answer_id"] = answer_id if answer_id is not None else uuid.uuid4().hex
        record["model_id"] = model_id
        record["metadata"] = {}
        return record

    def open_image(self, *, convert_rgb: bool = True):
        """Open ``image`` with Pillow (imported lazily); ``None`` for text-only questions."""
        return open_image(self.image, convert_rgb=convert_rgb)


@dataclass(frozen=True)
class Answer:
    """One line of an answers file, with where it came from (for error messages)."""

    question_id: QuestionId
    text: str
    prompt: str
    record: Mapping[str, Any]
    path: Path
    line: int


def open_image(image: Path | bytes | str | None, *, convert_rgb: bool = True):
    """Load an :attr:`EvalQuestion.image` as a ``PIL.Image.Image`` (``None`` stays ``None``).

    LLaVA's ``model_vqa_loader`` converts to RGB; ``model_vqa_mmbench`` and ``model_vqa_science``
    do not. ``convert_rgb`` lets the engine choose.
    """
    if image is None:
        return None
    from PIL import Image  # lazy: the scoring side does not need Pillow

    if isinstance(image, (bytes, bytearray)):
        img = Image.open(io.BytesIO(image))
    else:
        path = Path(image)
        if not path.is_file():
            raise FileNotFoundError(
                f"image file not found: {path}. Check the benchmark's image folder. {README_HINT}"
            )
        img = Image.open(path)
    return img.convert("RGB") if convert_rgb else img


def require_file(path: PathLike, what: str) -> Path:
    """Return ``path`` as a ``Path`` or raise a ``FileNotFoundError`` that says what it is."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{what} not found: {p}. {README_HINT}")
    return p


def require_dir(path: PathLike, what: str) -> Path:
    """Return ``path`` as a ``Path`` or raise a ``FileNotFoundError`` that says what it is."""
    p = Path(path)
    if not p.is_dir():
        raise FileNotFoundError(f"{what} not found (expected a directory): {p}. {README_HINT}")
    return p


def load_json(path: PathLike, what: str) -> Any:
    """Read a whole-file JSON document, naming the file on failure."""
    p = require_file(path, what)
    try:
        with p.open(encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise EvalDataError(
            f"{what} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            "Re-download the file; it may be truncated.",
            path=p,
        ) from exc


def iter_jsonl(path: PathLike, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for every non-blank line of a JSONL file.

    Blank lines are skipped (concatenated chunk files often end with one). A line that is not a
    JSON object raises :class:`EvalDataError` naming the file and the 1-based line number.
    """
    p = require_file(path, what)
    with p.open(encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EvalDataError(
                    f"malformed JSON in {what} ({exc.msg}, column {exc.colno}). "
                    "The file may be truncated by an interrupted run: delete or regenerate that line.",
                    path=p,
                    line=lineno,
                ) from exc
            if not isinstance(obj, dict):
                raise EvalDataError(
                    f"{what} lines must be JSON objects, got {type(obj).__name__}.", path=p, line=lineno
                )
            yield lineno, obj


def require_keys(
    obj: Mapping[str, Any], keys: Iterable[str], *, path: PathLike, line: int | None, what: str
) -> None:
    """Raise :class:`EvalDataError` if ``obj`` lacks any of ``keys``."""
    missing = [k for k in keys if k not in obj]
    if missing:
        raise EvalDataError(
            f"{what} is missing key(s) {missing}; present keys: {sorted(obj)}.", path=path, line=line
        )


def read_answers(path: PathLike, *, what: str = "answers file") -> list[Answer]:
    """Read a LLaVA answers JSONL file (``question_id``, ``prompt``, ``text``, ...)."""
    p = Path(path)
    answers = []
    for lineno, obj in iter_jsonl(p, what):
        require_keys(obj, ("question_id", "text"), path=p, line=lineno, what="answer line")
        text = obj["text"]
        if not isinstance(text, str):
            raise EvalDataError(
                f"answer 'text' must be a string, got {type(text).__name__}.", path=p, line=lineno
            )
        answers.append(
            Answer(
                question_id=obj["question_id"],
                text=text,
                prompt=obj.get("prompt", ""),
                record=obj,
                path=p,
                line=lineno,
            )
        )
    return answers


def index_answers(answers: Sequence[Answer], *, key=lambda a: a.question_id) -> dict[Any, Answer]:
    """Map answers by ``key(answer)``; a repeated key is an error (it would silently overwrite)."""
    by_id: dict[Any, Answer] = {}
    for ans in answers:
        k = key(ans)
        if k in by_id:
            first = by_id[k]
            raise EvalDataError(
                f"question_id {ans.question_id!r} is answered twice (first on line {first.line}). "
                "Remove the duplicate; concatenated chunk files may overlap.",
                path=ans.path,
                line=ans.line,
            )
        by_id[k] = ans
    return by_id


def read_llava_questions(
    question_file: PathLike, image_folder: PathLike | None, *, what: str = "question file"
) -> list[EvalQuestion]:
    """Read a ``model_vqa_loader``-style question file: ``{question_id, image, text, category?}``.

    ``prompt_text`` is the line's ``text`` unchanged: LLaVA-1.5's files already contain the
    instruction suffix (e.g. ``"\\nAnswer the question using a single word or phrase."``).
    ``image`` is ``image_folder / line["image"]``; the image files are only opened by the engine.
    """
    qpath = require_file(question_file, what)
    folder = None if image_folder is None else require_dir(image_folder, "image folder")
    questions = []
    for lineno, obj in iter_jsonl(qpath, what):
        require_keys(obj, ("question_id", "text"), path=qpath, line=lineno, what="question line")
        image = obj.get("image")
        if image is not None and folder is not None:
            image = folder / image
        elif image is not None:
            image = Path(image)
        extra = {k: v for k, v in obj.items() if k not in ("question_id", "text", "image")}
        questions.append(
            EvalQuestion(question_id=obj["question_id"], image=image, prompt_text=obj["text"], extra=extra)
        )
    return questions


def write_json(path: PathLike, obj: Any, *, indent: int | None = None) -> Path:
    """Write ``obj`` as JSON, creating parent folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        json.dump(obj, f, indent=indent)
    return p


def write_jsonl(path: PathLike, records: Iterable[Mapping[str, Any]]) -> Path:
    """Write one JSON object per line (``json.dumps`` defaults, as LLaVA writes), creating folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    return p


def percent(numerator: float, denominator: float) -> float | None:
    """``100 * numerator / denominator``, or ``None`` when there is nothing to divide by."""
    return None if denominator == 0 else numerator / denominator * 100
