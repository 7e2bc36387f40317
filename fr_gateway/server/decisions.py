"""Live events for Command Center screens (decisions for WatchDecisions, alerts for WatchAlerts): every event is
offered to each subscriber whose filter wants it, through a bounded queue per subscriber that drops its oldest
event when the subscriber reads too slowly, so a slow screen never slows a camera."""

from __future__ import annotations

import collections
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fr_gateway.contract import face_pb2, recognition_pb2, watchlists_pb2

# a message with a dropped_before field: DecisionEvent or Alert
Event = TypeVar("Event", recognition_pb2.DecisionEvent, watchlists_pb2.Alert)


class Subscription(Generic[Event]):
    def __init__(self, wants: Callable[[Event], bool], capacity: int) -> None:
        self.wants = wants
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._dropped = 0
        self._ready = threading.Condition()

    def offer(self, event: Event) -> None:
        with self._ready:
            if len(self._events) == self._events.maxlen:
                self._dropped += 1  # the deque drops the oldest as this one goes in
            self._events.append(event)
            self._ready.notify()

    def next(self, timeout: float) -> Event | None:
        """The oldest waiting event, marked with how many were dropped before it; None after `timeout`."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._events, timeout):
                return None
            published = self._events.popleft()
            event = type(published)()
            event.CopyFrom(published)  # every subscriber shares the published event: mark a copy
            event.dropped_before, self._dropped = self._dropped, 0
            return event


class Hub(Generic[Event]):
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscriptions: set[Subscription[Event]] = set()
        self._lock = threading.Lock()

    @property
    def watched(self) -> bool:
        """Someone subscribes: only then is an event worth building."""
        return bool(self._subscriptions)

    def publish(self, event: Event) -> None:
        with self._lock:
            subscriptions = list(self._subscriptions)
        for subscription in subscriptions:
            if subscription.wants(event):
                subscription.offer(event)

    @contextlib.contextmanager
    def subscribe(self, wants: Callable[[Event], bool]) -> Iterator[Subscription[Event]]:
        subscription: Subscription[Event] = Subscription(wants, self._capacity)
        with self._lock:
            self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            with self._lock:
                self._subscriptions.discard(subscription)


def decision_filter(request: recognition_pb2.WatchDecisionsRequest) -> Callable[[recognition_pb2.DecisionEvent], bool]:
    """MATCH decisions only unless all_decisions; only the cameras named, if any."""
    cameras = frozenset(request.camera_ids)
    return lambda event: ((request.all_decisions or event.decision == face_pb2.MATCH)
                          and (not cameras or event.camera_id in cameras))


def alert_filter(request: watchlists_pb2.WatchAlertsRequest) -> Callable[[watchlists_pb2.Alert], bool]:
    """Only the lists and cameras named, if any, at or above the priority asked."""
    lists, cameras, lowest = frozenset(request.watchlists), frozenset(request.camera_ids), request.min_priority
    return lambda alert: ((not lists or alert.hit.watchlist in lists) and (not cameras or alert.camera_id in cameras)
                          and alert.hit.priority >= lowest)
