"""A compact, lazily-read index over a LLaVA ``.json`` / ``.jsonl`` data file.

LLaVA's ``LazySupervisedDataset`` keeps ``json.load(open(path))`` in memory: for the 665K-record
finetuning mix that is several GB of Python dicts per process, and ``copy-on-write`` after ``fork`` does
not help because touching a Python object writes its reference count. Here the file is scanned once,
*streaming* (one record in memory at a time), and only numpy arrays are kept:

* the byte offset and byte size of every record in the file, so ``record(i)`` reads and parses just that
  record (``pread``-style, safe in DataLoader workers);
* what the length-grouped sampler needs without parsing again: LLaVA's word count
  (``sum(len(turn["value"].split()))``) and whether the record has an image.

That is 25 bytes per record (~17 MB for 665K records) instead of the dicts.

A ``.json`` file must be one JSON array of objects; a ``.jsonl`` file one object per line (blank lines are
allowed). A line that is not valid JSON is reported with the file name and line number; in a ``.jsonl`` file
it can be skipped (``on_malformed="skip"``), in a ``.json`` array it cannot (the rest of the array cannot be
re-synchronised reliably), so it always raises there.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import BadSampleError

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_READ_CHUNK = 1 << 22
MAX_RECORD_BYTES = 64 << 20
"""A single record larger than this is treated as malformed (protects against scanning a corrupt file whole)."""


@dataclass(frozen=True)
class RecordInfo:
    """What the index keeps about one record while scanning."""

    offset: int
    size: int
    line: int
    words: int
    has_image: bool


def _words_and_image(record: object, where: str) -> tuple[int, bool]:
    """LLaVA's ``lengths`` ingredients; raise ``malformed_record`` if the record cannot even provide those."""
    if not isinstance(record, dict):
        raise BadSampleError("malformed_record", f"expected a JSON object, got {type(record).__name__}", location=where)
    sample_id = record.get("id")
    conversations = record.get("conversations")
    if not isinstance(conversations, list):
        raise BadSampleError("malformed_record", "'conversations' is missing or not a list", str(sample_id), where)
    words = 0
    for turn in conversations:
        value = turn.get("value") if isinstance(turn, dict) else None
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise BadSampleError("malformed_record", "a turn's 'value' is not a string", str(sample_id), where)
        words += len(value.split())
    return words, "image" in record


def _scan_jsonl(path: str, errors: list[BadSampleError], on_malformed: str) -> Iterator[RecordInfo]:
    with open(path, "rb") as handle:
        offset = 0
        for line_number, raw in enumerate(iter(handle.readline, b""), start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            where = f"{path}:{line_number}"
            try:
                record = json.loads(raw)
                words, has_image = _words_and_image(record, where)
            except (json.JSONDecodeError, UnicodeDecodeError) as error:
                bad = BadSampleError("malformed_json", f"invalid JSON ({error})", location=where)
                if on_malformed == "raise":
                    raise bad from error
                errors.append(bad)
                continue
            except BadSampleError as bad:
                if on_malformed == "raise":
                    raise
                errors.append(bad)
                continue
            yield RecordInfo(start, len(raw), line_number, words, has_image)


def _scan_json_array(path: str, errors: list[BadSampleError], on_malformed: str) -> Iterator[RecordInfo]:
    """Walk a top-level JSON array one element at a time, tracking byte offsets and line numbers."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        buffer, position, eof = "", 0, False
        byte_offset, line = 0, 1  # of buffer[position]

        def fill() -> None:
            nonlocal buffer, position, eof
            chunk = handle.read(_READ_CHUNK)
            eof = not chunk
            try:
                text = utf8.decode(chunk, final=eof)
            except UnicodeDecodeError as error:
                raise BadSampleError(
                    "malformed_json", f"not valid UTF-8 ({error.reason}) after line {line}", location=path
                ) from error
            buffer = buffer[position:] + text
            position = 0

        def skip_whitespace() -> None:
            nonlocal position, byte_offset, line
            while True:
                end = _WHITESPACE.match(buffer, position).end()
                line += buffer.count("\n", position, end)
                byte_offset += end - position  # whitespace is ASCII
                position = end
                if position < len(buffer) or eof:
                    return
                fill()

        def fail(detail: str) -> BadSampleError:
            return BadSampleError("malformed_json", detail, location=f"{path}:{line}")

        if buffer == "":
            fill()
        if buffer.startswith("\ufeff"):
            position, byte_offset = 1, 3
        skip_whitespace()
        if position >= len(buffer) or buffer[position] != "[":
            raise fail("a .json data file must be a JSON array of records (use .jsonl for one record per line)")
        position, byte_offset = position + 1, byte_offset + 1
        skip_whitespace()
        if position < len(buffer) and buffer[position] == "]":
            return
        index = 0
        while True:
            if position >= len(buffer) or buffer[position] != "{":
                raise fail(f"array element {index} is not a JSON object")
            while True:
                try:
                    record, end = decoder.raw_decode(buffer, position)
                    break
                except json.JSONDecodeError as error:
                    if eof or len(buffer) - position > MAX_RECORD_BYTES:
                        at = line + buffer.count("\n", position, error.pos)
                        raise BadSampleError(
                            "malformed_json", f"array element {index}: {error.msg}", location=f"{path}:{at}"
                        ) from error
                    fill()
            text = buffer[position:end]
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
            where = f"{path}:{line} (array element {index})"
            try:
                words, has_image = _words_and_image(record, where)
                yield RecordInfo(byte_offset, size, line, words, has_image)
            except BadSampleError as bad:
                if on_malformed == "raise":
                    raise
                errors.append(bad)
            line += text.count("\n")
            byte_offset += size
            position = end
            index += 1
            skip_whitespace()
            if position >= len(buffer):
                raise fail("the JSON array is not closed (file truncated?)")
            if buffer[position] == "]":
                return
            if buffer[position] != ",":
                raise fail(f"expected ',' or ']' after array element {index - 1}, got {buffer[position]!r}")
            position, byte_offset = position + 1, byte_offset + 1
            skip_whitespace()


class RecordIndex:
    """Byte offsets + sampler numbers for every record of a LLaVA data file; records are parsed on demand."""

    def __init__(self, path: str | os.PathLike[str], *, on_malformed: Literal["raise", "skip"] = "raise") -> None:
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"data file not found: {self.path}")
        suffix = os.path.splitext(self.path)[1].lower()
        if suffix == ".jsonl":
            scan = _scan_jsonl
        elif suffix == ".json":
            scan = _scan_json_array
        else:
            raise ValueError(f"data file {self.path} must end in .json (a list of records) or .jsonl (one per line)")
        self.malformed: list[BadSampleError] = []
        stat = os.stat(self.path)
        self._signature = (stat.st_size, stat.st_mtime_ns)
        # array.array while scanning (8 bytes per entry, no int objects), numpy afterwards.
        offsets, sizes, lines, words, images = (array("q") for _ in range(5))
        for info in scan(self.path, self.malformed, on_malformed):
            offsets.append(info.offset)
            sizes.append(info.size)
            lines.append(info.line)
            words.append(info.words)
            images.append(info.has_image)
        # numpy arrays: a few bytes per record, no per-record Python objects once the scan is done.
        self.offsets = np.frombuffer(offsets, dtype=np.int64).copy()
        self.sizes = np.frombuffer(sizes, dtype=np.int64).astype(np.int32)
        self.lines = np.frombuffer(lines, dtype=np.int64).copy()
        self.words = np.frombuffer(words, dtype=np.int64).astype(np.int32)
        self.has_image = np.frombuffer(images, dtype=np.int64).astype(np.bool_)
        del offsets, sizes, lines, words, images
        self._handle = None
        self._handle_pid = None

    def __len__(self) -> int:
        return len(self.offsets)

    def location(self, index: int) -> str:
        """``file:line, record i`` -- unique per record even when a .json array sits on one line."""
        return f"{self.path}:{int(self.lines[index])}, record {index}"

    def _file(self):
        # One handle per process: a handle inherited through fork shares its file position with the parent.
        if self._handle is None or self._handle_pid != os.getpid():
            stat = os.stat(self.path)
            if (stat.st_size, stat.st_mtime_ns) != self._signature:
                raise RuntimeError(f"data file {self.path} changed after it was indexed; rebuild the dataset")
            self._handle = open(self.path, "rb")  # noqa: SIM115 -- kept open across items, closed in __del__
            self._handle_pid = os.getpid()
        return self._handle

    def raw(self, index: int) -> bytes:
        handle = self._file()
        handle.seek(int(self.offsets[index]))
        return handle.read(int(self.sizes[index]))

    def record(self, index: int) -> dict:
        """Parse record ``index`` (a dict with ``conversations`` -- validated while indexing)."""
        return json.loads(self.raw(index))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handle"] = None
        state["_handle_pid"] = None
        return state

    def __del__(self) -> None:
        handle = getattr(self, "_handle", None)
        if handle is not None and self._handle_pid == os.getpid():
            handle.close()

    @property
    def nbytes(self) -> int:
        """Memory held by the index arrays."""
        return sum(a.nbytes for a in (self.offsets, self.sizes, self.lines, self.words, self.has_image))
