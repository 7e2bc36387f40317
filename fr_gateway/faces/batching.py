"""Micro-batching: crops from every stream and call are gathered into batches for one embedder thread,
through a bounded queue that refuses work instead of growing latency without bound."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future

import numpy as np

from fr_gateway.faces.embedder import FaceEmbedder
from fr_gateway.metrics import EMBED_BATCH, FACES_EMBEDDED, QUEUE_DEPTH, timed

log = logging.getLogger(__name__)


class Overloaded(Exception):
    """The queue is full: the caller should answer RESOURCE_EXHAUSTED or an OVERLOADED decision."""


class EmbeddingBatcher:
    """Takes up to `batch_size` queued crops, waiting at most `wait_ms` for the batch to fill."""

    def __init__(self, embedder: FaceEmbedder, batch_size: int, wait_ms: float, queue_size: int) -> None:
        self._embedder = embedder
        self._batch_size = max(1, batch_size)
        self._wait_s = max(0.0, wait_ms) / 1000
        self._queue: queue.Queue[tuple[np.ndarray, Future[np.ndarray]] | None] = queue.Queue(queue_size)
        self._worker = threading.Thread(target=self._run, name="embedder", daemon=True)
        self._worker.start()

    def submit(self, crop: np.ndarray) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        try:
            self._queue.put_nowait((crop, future))
            QUEUE_DEPTH.set(self._queue.qsize())
        except queue.Full as exc:
            raise Overloaded(f"embedding queue is full ({self._queue.maxsize} crops waiting)") from exc
        return future

    @property
    def depth(self) -> int:
        """Crops waiting for the embedder."""
        return self._queue.qsize()

    def embed(self, crop: np.ndarray, timeout: float | None = None) -> np.ndarray:
        return self.submit(crop).result(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._worker.join()

    def _collect(self, first: tuple[np.ndarray, Future[np.ndarray]]) -> tuple[list, bool]:
        batch = [first]
        deadline = time.monotonic() + self._wait_s
        while len(batch) < self._batch_size:
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
            QUEUE_DEPTH.set(self._queue.qsize())
            live = [(crop, fut) for crop, fut in batch if fut.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                with timed("embed"):
                    templates = self._embedder.embed([crop for crop, _ in live])
                EMBED_BATCH.observe(len(live))
                FACES_EMBEDDED.inc(len(live))
            except Exception as exc:  # a failed batch fails its callers, never the worker
                log.exception("embedding batch of %d failed", len(live))
                for _, fut in live:
                    fut.set_exception(exc)
                continue
            for (_, fut), template in zip(live, templates, strict=True):
                fut.set_result(template)
