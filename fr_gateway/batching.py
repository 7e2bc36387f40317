"""Micro-batching: work from every stream and call is gathered into batches for the worker threads of each
stage (the detector, the recogniser, the search), through a bounded queue that refuses work instead of growing
latency without bound. A face can pass from stage to stage on the workers' threads (`submit_after`, `then`),
with no thread of its own waiting in between: on a 2-core box each hand-off between threads costs tens of
microseconds of CPU, and a thread per face in flight made dozens of them a face."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from typing import Any, Generic, TypeVar

from fr_gateway.metrics import BATCH_SIZE, QUEUE_DEPTH, timed

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
Value = TypeVar("Value")


class Overloaded(Exception):
    """The queue is full, or the caller's time ran out: the caller should answer RESOURCE_EXHAUSTED or an
    OVERLOADED decision."""


def finished(value: Value) -> Future[Value]:
    """A future that is already done, for a step that needed no stage."""
    future: Future[Value] = Future()
    future.set_result(value)
    return future


def _settle(future: Future, value: Any = None, failure: BaseException | None = None) -> None:
    """Finish a future unless its caller gave up on it (cancelled it) meanwhile. A failure goes on without its
    traceback: that would hold the frames of this thread, and with them the future (a reference cycle that
    keeps decoded images alive until Python's cycle collector happens to run)."""
    with contextlib.suppress(InvalidStateError):
        if failure is None:
            future.set_result(value)
        else:
            future.set_exception(failure.with_traceback(None))


class _Once:
    """A done-callback that lets go of what it holds once it has run. A future keeps its callbacks, and the
    callbacks that chain stages hold the next future, which holds one back to cancel this one: a reference cycle
    that would keep each face's images alive until Python's cycle collector happens to run."""

    __slots__ = ("_call",)

    def __init__(self, call: Callable[[Future], object]) -> None:
        self._call: Callable[[Future], object] | None = call

    def __call__(self, future: Future) -> None:
        call, self._call = self._call, None
        if call is not None:
            call(future)


def _cancels(later: Future, earlier: Future) -> None:
    """Cancelling `later` cancels `earlier`."""
    later.add_done_callback(_Once(lambda gone: gone.cancelled() and earlier.cancel()))


def then(earlier: Future[Value], step: Callable[[Future[Value]], Result]) -> Future[Result]:
    """A future of step(earlier), run once `earlier` is done (the step reads its result, or its failure) by the
    thread that finished it: a stage's worker carries the face on. Cancelling the returned future before the step
    starts cancels `earlier`, so the stages skip what is still queued for it; once the step runs, its result
    comes."""
    later: Future[Result] = Future()

    def run(done: Future[Value]) -> None:
        if done.cancelled():
            later.cancel()
        elif later.set_running_or_notify_cancel():
            try:
                result = step(done)
            except BaseException as exc:  # the step's failure is the future's
                _settle(later, failure=exc)
            else:
                later.set_result(result)

    _cancels(later, earlier)
    earlier.add_done_callback(_Once(run))
    return later


def settled(earlier: Future[Value], until: Callable[[Value], Future]) -> Future[Value]:
    """earlier's result, given once the future until(result) is done too (its failure is this one's), by the
    thread that finishes that one: whoever waits wakes once, not once for each. Cancelling it cancels `earlier`
    while that is not done; after that, the result comes."""
    later: Future[Value] = Future()

    def wait_until(done: Future[Value]) -> None:
        if done.cancelled():
            later.cancel()
        elif (failure := done.exception()) is not None:
            _settle(later, failure=failure)
        elif later.set_running_or_notify_cancel():
            value = done.result()
            until(value).add_done_callback(_Once(lambda last: _settle(later, value, last.exception())))

    _cancels(later, earlier)
    earlier.add_done_callback(_Once(wait_until))
    return later


def time_left(deadline: float | None, limit_s: float) -> float:
    """Seconds to wait for a stage: until the caller's deadline (time.monotonic()), at most `limit_s`."""
    return limit_s if deadline is None else max(0.0, min(limit_s, deadline - time.monotonic()))


def wait_for(future: Future[Value], deadline: float | None, limit_s: float, work: Future | None = None) -> Value:
    """The future's result; once the caller's deadline (time.monotonic()) or `limit_s` has passed, `work` (the
    future whose cancelling stops what the result waits for; the future itself by default) is cancelled and
    Overloaded raised, unless that work was already under way: then its result is coming, and is waited for."""
    try:
        return future.result(time_left(deadline, limit_s))
    except TimeoutError:
        if (work or future).cancel():
            raise Overloaded("no time left before the deadline") from None
        return future.result()


async def arrival(future: Future[Value], deadline: float | None, limit_s: float, work: Future | None = None) -> Value:
    """wait_for, for a coroutine: the event loop serves other calls while this one waits."""
    waiting = asyncio.wrap_future(future)
    try:
        return await asyncio.wait_for(asyncio.shield(waiting), time_left(deadline, limit_s))
    except TimeoutError:
        if (work or future).cancel():
            raise Overloaded("no time left before the deadline") from None
        return await waiting


class MicroBatcher(Generic[Item, Result]):
    """Runs `work` on up to `batch_size` queued items at once, waiting at most `wait_ms` for a batch to fill;
    `work` returns one result per item, in order; `workers` threads run batches side by side. Items whose caller
    gave up (a cancelled future) are skipped. A failed batch fails its callers."""

    def __init__(self, stage: str, work: Callable[[list[Item]], Sequence[Result]], batch_size: int, wait_ms: float,
                 queue_size: int, workers: int = 1) -> None:
        self._stage = stage
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

    def submit_after(self, earlier: Future[Value], item_of: Callable[[Value], Item]) -> Future[Result]:
        """Queue item_of(earlier's result) once `earlier` is done, from the thread that finished it. Its failure,
        or a full queue (Overloaded), fails the returned future; cancelling that future cancels `earlier`, or has
        the workers skip the item."""
        later: Future[Result] = Future()

        def queue_item(done: Future[Value]) -> None:
            if done.cancelled():
                later.cancel()
                return
            if (failure := done.exception()) is not None:  # passed on as it is, not raised again here
                _settle(later, failure=failure)
                return
            try:
                self._queue.put_nowait((item_of(done.result()), later))
            except queue.Full:
                _settle(later, failure=Overloaded(f"{self._stage} queue is full ({self._queue.maxsize} waiting)"))
            except BaseException as exc:  # item_of's failure is this one's
                _settle(later, failure=exc)
            else:
                self._depth.set(self._queue.qsize())

        _cancels(later, earlier)
        earlier.add_done_callback(_Once(queue_item))
        return later

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
            stopping = self._run_batch(first)

    def _run_batch(self, first: tuple[Item, Future[Result]]) -> bool:
        """One batch, from the first item on; whether a stop mark came with it. Its items (decoded images) are let
        go of on return, not held while the worker waits for the next."""
        batch, stopping = self._collect(first)
        self._depth.set(self._queue.qsize())
        live = [(item, fut) for item, fut in batch if fut.set_running_or_notify_cancel()]
        if not live:
            return stopping
        try:
            with timed(self._stage):
                results = self._work([item for item, _ in live])
            self._sizes.observe(len(live))
        except Exception as exc:  # a failed batch fails its callers, never the worker
            log.exception("%s batch of %d failed", self._stage, len(live))
            for _, fut in live:
                _settle(fut, failure=exc)
            return stopping
        for (_, fut), result in zip(live, results, strict=True):
            fut.set_result(result)
        return stopping
