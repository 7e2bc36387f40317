"""What the live page shows, kept by the console from its gateways' streams: the camera wall, the latest
decisions and the latest alerts. Each browser gets it all when it connects, then each change as it happens,
through a bounded queue that drops its oldest change when the browser reads too slowly."""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import statistics
import time

from fr_gateway.contract import command_center_pb2, face_pb2, recognition_pb2, watchlists_pb2

DECISIONS_KEPT = 200
ALERTS_KEPT = 100
MINUTE_S = 60.0
QUEUE_EVENTS = 1000
PRIORITIES = {watchlists_pb2.PRIORITY_LOW: "low", watchlists_pb2.PRIORITY_NORMAL: "normal",
              watchlists_pb2.PRIORITY_HIGH: "high"}


@dataclasses.dataclass
class CameraTile:
    camera_id: str
    gateway: str
    online: bool = False
    last_seen: str = ""
    last_decision: dict | None = None
    # (monotonic time, latency ms) of the decisions of the last minute
    recent: collections.deque[tuple[float, float]] = dataclasses.field(default_factory=collections.deque)

    def view(self, now: float) -> dict:
        while self.recent and now - self.recent[0][0] > MINUTE_S:
            self.recent.popleft()
        latencies = [latency for _, latency in self.recent]
        return {"camera": self.camera_id, "gateway": self.gateway, "online": self.online, "last_seen": self.last_seen,
                "faces_per_minute": len(latencies), "last_decision": self.last_decision,
                "latency_p50_ms": round(statistics.median(latencies), 1) if latencies else None}


def decision_view(gateway: str, event: recognition_pb2.DecisionEvent) -> dict:
    """A decision as the page shows it: the NIK and score of a MATCH only, the reason of a face not searched."""
    matched = event.decision == face_pb2.MATCH and event.candidates
    return {"gateway": gateway, "time": event.time, "camera": event.camera_id, "track": event.track_id,
            "decision": face_pb2.Decision.Name(event.decision),
            "nik": event.candidates[0].nik if matched else "",
            "score": round(event.candidates[0].score, 4) if matched else None,
            "threshold": round(event.threshold, 4),
            "reason": face_pb2.Reason.Name(event.reason) if event.reason else "",
            "latency_ms": round(event.latency_ms, 1), "dropped_before": event.dropped_before}


def alert_view(gateway: str, alert: watchlists_pb2.Alert) -> dict:
    hit = alert.hit
    return {"gateway": gateway, "alert_id": alert.alert_id, "time": alert.time, "camera": alert.camera_id,
            "track": alert.track_id, "request_id": alert.request_id, "watchlist": hit.watchlist,
            "entry_id": hit.entry_id, "label": hit.label, "case_reference": hit.case_reference,
            "score": round(hit.score, 4), "threshold": round(hit.threshold, 4),
            "priority": PRIORITIES.get(hit.priority, "normal"),
            "crop": f"data:image/jpeg;base64,{base64.b64encode(alert.evidence).decode()}" if alert.evidence else "",
            "adjudication": "", "adjudicated_by": ""}


class LiveView:
    def __init__(self) -> None:
        self._cameras: dict[str, CameraTile] = {}
        self._decisions: collections.deque[dict] = collections.deque(maxlen=DECISIONS_KEPT)
        self._alerts: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._gateways: dict[str, str] = {}  # gateway -> "" when connected, else why not
        self._browsers: set[asyncio.Queue[tuple[str, object]]] = set()

    def gateway_of(self, alert_id: str) -> str | None:
        alert = self._alerts.get(alert_id)
        return alert["gateway"] if alert else None

    def _wall(self) -> list[dict]:
        now = time.monotonic()
        return [tile.view(now) for tile in self._cameras.values()]

    def snapshot(self) -> dict:
        return {"cameras": self._wall(), "decisions": list(self._decisions),
                "alerts": list(self._alerts.values()), "gateways": self._gateways}

    def _tile(self, camera_id: str, gateway: str) -> CameraTile:
        return self._cameras.setdefault(camera_id, CameraTile(camera_id, gateway))

    def decision(self, gateway: str, event: recognition_pb2.DecisionEvent) -> None:
        view = decision_view(gateway, event)
        tile = self._tile(event.camera_id, gateway)
        tile.recent.append((time.monotonic(), event.latency_ms))
        tile.last_decision, tile.last_seen, tile.online = view, event.time, True
        self._decisions.append(view)
        self._send("decision", view)

    def alert(self, gateway: str, alert: watchlists_pb2.Alert) -> None:
        view = alert_view(gateway, alert)
        self._alerts[alert.alert_id] = view
        while len(self._alerts) > ALERTS_KEPT:
            self._alerts.popitem(last=False)
        self._send("alert", view)

    def adjudicated(self, response: watchlists_pb2.AdjudicateResponse) -> None:
        alert = self._alerts.get(response.alert_id)
        if alert is not None:
            alert["adjudication"] = watchlists_pb2.Adjudication.Name(response.adjudication)
            alert["adjudicated_by"] = response.adjudicated_by
            self._send("adjudicated", {key: alert[key] for key in ("alert_id", "adjudication", "adjudicated_by")})

    def cameras(self, gateway: str, response: command_center_pb2.ListCamerasResponse) -> None:
        for status in response.cameras:
            tile = self._tile(status.camera_id, gateway)
            tile.online, tile.last_seen = status.online, status.last_seen or tile.last_seen

    def gateway_state(self, gateway: str, problem: str) -> None:
        """`problem` is empty while the gateway's streams are up; its cameras are shown offline while not."""
        if self._gateways.get(gateway) != problem:
            self._gateways[gateway] = problem
            if problem:
                for tile in self._cameras.values():
                    tile.online = tile.online and tile.gateway != gateway
            self._send("gateways", self._gateways)

    def tick(self) -> None:
        """The camera wall once a second: faces a minute and latency change as the minute moves on."""
        self._send("cameras", self._wall())

    def _send(self, kind: str, data: object) -> None:
        for browser in self._browsers:
            if browser.full():
                browser.get_nowait()
            browser.put_nowait((kind, data))

    def connect(self) -> asyncio.Queue[tuple[str, object]]:
        browser: asyncio.Queue[tuple[str, object]] = asyncio.Queue(QUEUE_EVENTS)
        self._browsers.add(browser)
        return browser

    def disconnect(self, browser: asyncio.Queue) -> None:
        self._browsers.discard(browser)
