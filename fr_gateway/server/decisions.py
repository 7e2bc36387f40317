"""Live decisions for Command Center screens: every Identify decision is offered to each WatchDecisions
subscriber whose filter wants it, through a bounded queue per subscriber that drops its oldest event when the
subscriber reads too slowly, so a slow screen never slows a camera."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Iterator

from fr_gateway.contract import face_pb2, recognition_pb2


class Subscription:
    def __init__(self, cameras: frozenset[str], all_decisions: bool, capacity: int) -> None:
        self._cameras = cameras
        self._all_decisions = all_decisions
        self._events: collections.deque[recognition_pb2.DecisionEvent] = collections.deque(maxlen=capacity)
        self._dropped = 0
        self._ready = threading.Condition()

    def wants(self, event: recognition_pb2.DecisionEvent) -> bool:
        return (self._all_decisions or event.decision == face_pb2.MATCH) and (
            not self._cameras or event.camera_id in self._cameras)

    def offer(self, event: recognition_pb2.DecisionEvent) -> None:
        with self._ready:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1  # the deque drops the oldest as this one goes in
            self._events.append(event)
            self._ready.notify()

    def next(self, timeout: float) -> recognition_pb2.DecisionEvent | None:
        """The oldest waiting event, marked with how many were dropped before it; None after `timeout`."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._events, timeout):
                return None
            event = recognition_pb2.DecisionEvent()
            event.CopyFrom(self._events.popleft())  # every subscriber shares the published event: mark a copy
            event.dropped_before, self._dropped = self._dropped, 0
            return event


class DecisionHub:
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()

    @property
    def watched(self) -> bool:
        """Someone subscribes: only then is an event worth building."""
        return bool(self._subscriptions)

    def publish(self, event: recognition_pb2.DecisionEvent) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            if subscription.wants(event):
                subscription.offer(event)

    @contextlib.contextmanager
    def subscribe(self, request: recognition_pb2.WatchDecisionsRequest) -> Iterator[Subscription]:
        subscription = Subscription(frozenset(request.camera_ids), request.all_decisions, self._capacity)
        with self._lock:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.discard(subscription)
