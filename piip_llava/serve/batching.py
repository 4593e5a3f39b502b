"""One worker thread owns the model: it batches waiting requests and runs streams one at a time.

A model answers a batch of 8 prompts in little more time than one (decoding is memory-bound), so
non-streaming requests that arrive together are grouped -- up to ``max_batch`` with the same sampling
settings -- into one :meth:`Generator.generate` call. Streaming requests need their tokens as they come,
so the worker runs them alone, in arrival order. Having a single thread touch the model keeps GPU
memory bounded and makes the queue (not a lock race) decide who goes next.

Jobs are validated (and their images decoded) by the caller before they are queued, so one bad
request cannot fail a batch it shares with good ones.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


class QueueFullError(RuntimeError):
    """More requests are waiting than the server is configured to hold."""


@dataclass(frozen=True)
class BatchingConfig:
    max_batch: int = 8
    """Most non-streaming requests answered by one ``generate`` call."""
    batch_wait_s: float = 0.01
    """How long the worker waits for more requests to join a batch once the first has arrived."""
    max_queue: int = 256
    """Requests waiting beyond this are refused (HTTP 503) instead of piling up without bound."""


@dataclass
class Job:
    """One request: prompt messages, decoded images and generation options.

    Non-streaming jobs get their answer through ``future``; streaming jobs get each text chunk, then
    ``None`` (done) or an exception, through ``on_chunk`` (called on the worker thread).
    """

    messages: list[dict]
    images: list[Any]
    options: Any
    """A :class:`~piip_llava.inference.GenerationOptions`."""
    on_chunk: Callable[[Any], None] | None = None
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def streaming(self) -> bool:
        return self.on_chunk is not None

    def batch_key(self) -> tuple:
        """Jobs with equal keys can share one ``generate`` call (same sampling settings)."""
        o = self.options
        return (o.max_new_tokens, o.temperature, o.top_p, o.num_beams)


def _cancel_criteria(event: threading.Event):
    """A stopping criterion that ends generation once ``event`` is set (the client went away)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_Cancelled()])


class BatchWorker:
    """Owns the :class:`~piip_llava.inference.Generator`; call :meth:`start`, :meth:`submit`, :meth:`stop`."""

    def __init__(self, generator, config: BatchingConfig | None = None):
        self.generator = generator
        self.config = config or BatchingConfig()
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=self.config.max_queue)
        self._held: deque[Job] = deque()  # taken off the queue but not batchable with the current batch
        self._thread: threading.Thread | None = None
        self.batches_run = 0
        self.largest_batch = 0

    @property
    def waiting(self) -> int:
        return self._queue.qsize() + len(self._held)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="piip-llava-batch-worker", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, job: Job) -> Job:
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise QueueFullError(f"{self.config.max_queue} requests are already waiting; retry later.") from None
        return job

    # -- worker thread ---------------------------------------------------------------------------------

    def _next(self, timeout: float | None) -> Job | None:
        if self._held:
            return self._held.popleft()
        return self._queue.get(timeout=timeout) if timeout is None or timeout > 0 else self._queue.get_nowait()

    def _loop(self) -> None:
        while True:
            job = self._next(None)
            if job is None:
                return
            if job.streaming:
                self._run_stream(job)
                continue
            batch = [job]
            deadline = time.monotonic() + self.config.batch_wait_s
            skipped: list[Job] = []
            stop = False
            while len(batch) < self.config.max_batch:
                try:
                    nxt = self._next(max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                if not nxt.streaming and nxt.batch_key() == job.batch_key():
                    batch.append(nxt)
                else:
                    skipped.append(nxt)
            self._held.extendleft(reversed(skipped))  # keep arrival order for the next round
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        if not live:
            return
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, len(live))
        try:
            answers = self.generator.generate([j.messages for j in live], [j.images for j in live], live[0].options)
        except BaseException as error:  # noqa: BLE001 -- every caller in the batch is told; the worker keeps running
            for job in live:
                job.future.set_exception(error)
            return
        for job, answer in zip(live, answers):
            job.future.set_result(answer)

    def _run_stream(self, job: Job) -> None:
        from dataclasses import replace

        if job.cancelled.is_set():
            return
        extra = dict(job.options.extra, stopping_criteria=_cancel_criteria(job.cancelled))
        options = replace(job.options, extra=extra)
        try:
            for chunk in self.generator.stream(job.messages, job.images, options):
                if job.cancelled.is_set():
                    break
                job.on_chunk(chunk)
            job.on_chunk(None)
        except BaseException as error:  # noqa: BLE001 -- handed to the request, which reports it
            job.on_chunk(error)
