"""A thread pool that gives its threads back: the standard ThreadPoolExecutor keeps every thread it ever
started, so after a burst of 300 camera streams the gateway held 834 idle threads (and their stacks) for good.
Here a thread that has waited IDLE_S for work ends; the pool starts threads again when work comes, up to its
maximum. The standard library has no executor with an idle timeout, hence these few lines."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any

IDLE_S = 30.0


class ElasticThreadPool(futures.Executor):
    def __init__(self, max_workers: int, thread_name_prefix: str, idle_s: float = IDLE_S) -> None:
        self._max_workers = max_workers
        self._prefix = thread_name_prefix
        self._idle_s = idle_s
        self._work: queue.SimpleQueue[tuple[futures.Future, Callable, tuple, dict] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._started = 0
        self._shutdown = False

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> futures.Future:
        future: futures.Future = futures.Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._work.put((future, fn, args, kwargs))
            if self._idle:
                self._idle -= 1  # that thread takes this work
            elif len(self._threads) < self._max_workers:
                self._started += 1
                thread = threading.Thread(target=self._serve, name=f"{self._prefix}_{self._started}", daemon=True)
                self._threads.add(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while True:
            try:
                item = self._work.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # nothing was handed to this thread while it waited: it ends
                        self._idle -= 1
                        self._threads.discard(threading.current_thread())
                        return
                continue  # work was promised to it just now: take it
            if item is None:
                with self._lock:
                    self._threads.discard(threading.current_thread())
                return
            future, fn, args, kwargs = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as exc:  # the caller's function failed: its future carries it
                    future.set_exception(exc)
            del item, future, fn, args, kwargs
            with self._lock:
                self._idle += 1

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._threads)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        for _ in threads:
            self._work.put(None)
        if wait:
            for thread in threads:
                thread.join()
