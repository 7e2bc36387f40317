"""Live state for Command Center screens. Events (decisions for WatchDecisions, alerts for WatchAlerts): every
event is offered to each subscriber whose filter wants it, through a bounded queue per subscriber that drops its
oldest event when the subscriber reads too slowly, so a slow screen never slows a camera. Cameras (ListCameras):
which have been heard from and which are online."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from fr_gateway.contract import face_pb2, recognition_pb2, watchlists_pb2

# a message with a dropped_before field: DecisionEvent or Alert
Event = TypeVar("Event", recognition_pb2.DecisionEvent, watchlists_pb2.Alert)


class Subscription(Generic[Event]):
    """One watcher's events. Events are published, and read by the watchers' calls, on the server's event loop:
    no lock is needed."""

    def __init__(self, wants: Callable[[Event], bool], capacity: int) -> None:
        self.wants = wants
        self._events: collections.deque[Event] = collections.deque(maxlen=capacity)
        self._dropped = 0
        self._waiting = asyncio.Event()

    def offer(self, event: Event) -> None:
        if len(self._events) == self._events.maxlen:
            self._dropped += 1  # the deque drops the oldest as this one goes in
        self._events.append(event)
        self._waiting.set()

    async def next(self) -> Event:
        """The oldest waiting event, marked with how many were dropped before it."""
        while not self._events:
            self._waiting.clear()
            await self._waiting.wait()
        published = self._events.popleft()
        event = type(published)()
        event.CopyFrom(published)  # every subscriber shares the published event: mark a copy
        event.dropped_before, self._dropped = self._dropped, 0
        return event


class Hub(Generic[Event]):
    def __init__(self, capacity: int = 1024) -> None:
        self._capacity = capacity
        self._subscriptions: set[Subscription[Event]] = set()

    @property
    def watched(self) -> bool:
        """Someone subscribes: only then is an event worth building."""
        return bool(self._subscriptions)

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            if subscription.wants(event):
                subscription.offer(event)

    @contextlib.contextmanager
    def subscribe(self, wants: Callable[[Event], bool]) -> Iterator[Subscription[Event]]:
        subscription: Subscription[Event] = Subscription(wants, self._capacity)
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
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


ONLINE_WINDOW_S = 30.0  # a camera that sends single faces is online this long after its last one
CAMERAS_KEPT = 10_000  # the cameras longest unheard of are forgotten beyond this many


@dataclasses.dataclass
class CameraSeen:
    open_streams: int = 0
    last_seen: float = 0.0  # Unix time of its last face
    faces: int = 0


class Cameras:
    """The cameras a gateway has heard from since it started, for the Command Center's camera wall: online while
    one of their streams is open or within ONLINE_WINDOW_S of their last face."""

    def __init__(self) -> None:
        self._seen: dict[str, CameraSeen] = {}
        self._lock = threading.Lock()

    def _camera(self, camera_id: str) -> CameraSeen:
        camera = self._seen.get(camera_id)
        if camera is None:
            if len(self._seen) >= CAMERAS_KEPT:
                del self._seen[min(self._seen, key=lambda name: self._seen[name].last_seen)]
            camera = self._seen[camera_id] = CameraSeen()
        return camera

    def face(self, camera_id: str) -> None:
        with self._lock:
            camera = self._camera(camera_id)
            camera.faces += 1
            camera.last_seen = time.time()

    @contextlib.contextmanager
    def streaming(self) -> Iterator[Callable[[str], None]]:
        """For one IdentifyStream call: call the function given with the camera's id once it is known; the camera
        counts as streaming until the block ends."""
        named: list[str] = []

        def name(camera_id: str) -> None:
            if camera_id and not named:
                named.append(camera_id)
                with self._lock:
                    self._camera(camera_id).open_streams += 1

        try:
            yield name
        finally:
            if named:
                with self._lock:
                    self._camera(named[0]).open_streams -= 1

    def statuses(self) -> list[tuple[str, CameraSeen, bool]]:
        """(camera id, what was seen, online) for each camera, by id."""
        now = time.time()
        with self._lock:
            return [(camera_id, dataclasses.replace(seen), seen.open_streams > 0
                     or now - seen.last_seen < ONLINE_WINDOW_S) for camera_id, seen in sorted(self._seen.items())]
