"""Micro-batching: work from every stream and call is gathered into batches for the worker threads of each
stage (the detector, the recogniser, the search), through a bounded queue that refuses work instead of growing
latency without bound."""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from fr_gateway.metrics import BATCH_SIZE, QUEUE_DEPTH, timed

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


class Overloaded(Exception):
    """The queue is full: the caller should answer RESOURCE_EXHAUSTED or an OVERLOADED decision."""


class MicroBatcher(Generic[Item, Result]):
    """Runs `work` on up to `batch_size` queued items at once, waiting at most `wait_ms` for a batch to fill;
    `work` returns one result per item, in order; `workers` threads run batches side by side. Items whose caller
    gave up (a cancelled future) are skipped. A failed batch fails its callers; failures of the `expected` kinds
    (an outage, not a bug) log one line."""

    def __init__(self, stage: str, work: Callable[[list[Item]], Sequence[Result]], batch_size: int, wait_ms: float,
                 queue_size: int, expected: tuple[type[Exception], ...] = (), workers: int = 1) -> None:
        self._stage = stage
        self._expected = expected
        self._work = work
        self._batch_size = max(1, batch_size)
        self._wait_s = max(0.0, wait_ms) / 1000
        self._queue: queue.Queue[tuple[Item, Future[Result]] | None] = queue.Queue(queue_size)
        self._depth = QUEUE_DEPTH.labels(stage)
        self._sizes = BATCH_SIZE.labels(stage)
        self._workers = [threading.Thread(target=self._run, name=f"{stage}-{n}", daemon=True)
                         for n in range(max(1, workers))]
        for worker in self._workers:
            worker.start()

    def submit(self, item: Item) -> Future[Result]:
        future: Future[Result] = Future()
        try:
            self._queue.put_nowait((item, future))
            self._depth.set(self._queue.qsize())
        except queue.Full as exc:
            raise Overloaded(f"{self._stage} queue is full ({self._queue.maxsize} waiting)") from exc
        return future

    @property
    def depth(self) -> int:
        """Items waiting for a worker."""
        return self._queue.qsize()

    def run(self, item: Item, timeout: float | None = None) -> Result:
        return self.submit(item).result(timeout)

    def close(self) -> None:
        """Each worker finishes what it holds and stops at the first of the stop marks, one per worker."""
        for _ in self._workers:
            self._queue.put(None)
        for worker in self._workers:
            worker.join()

    def _share(self) -> int:
        """The most one batch takes. One worker waits to fill a whole batch; several share out what is queued
        instead, so the first to wake cannot take a backlog whole and leave the others idle (on two cores, a
        single-threaded batch of 32 takes most of a second)."""
        if len(self._workers) == 1:
            return self._batch_size
        return min(self._batch_size, max(1, math.ceil((1 + self._queue.qsize()) / len(self._workers))))

    def _collect(self, first: tuple[Item, Future[Result]]) -> tuple[list, bool]:
        batch, share = [first], self._share()
        deadline = time.monotonic() + self._wait_s
        while len(batch) < share:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._collect(first)
            self._depth.set(self._queue.qsize())
            live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                with timed(self._stage):
                    results = self._work([item for item, _ in live])
                self._sizes.observe(len(live))
            except Exception as exc:  # a failed batch fails its callers, never the worker
                if isinstance(exc, self._expected):
                    log.warning("%s batch of %d failed: %s", self._stage, len(live), exc)
                else:
                    log.exception("%s batch of %d failed", self._stage, len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            for (_, fut), result in zip(live, results, strict=True):
                fut.set_result(result)
