"""The console's link to one gateway: gRPC over mutual TLS with the console's operator certificate, following
the gateway's decisions and alerts and polling its cameras, and the calls a console user's clicks become."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc

from fr_gateway.console.live import LiveView
from fr_gateway.contract import (
    command_center_pb2,
    command_center_pb2_grpc,
    recognition_pb2,
    recognition_pb2_grpc,
    watchlists_pb2,
    watchlists_pb2_grpc,
)

log = logging.getLogger(__name__)

CAMERAS_EVERY_S = 2.0
RECONNECT_S = (0.5, 1, 2, 5, 10)  # waits before each new try after a stream breaks; the last repeats
CALL_TIMEOUT_S = 10.0


@dataclasses.dataclass(frozen=True)
class ClientFiles:
    """The console's client certificate, its key, and the CA of the gateways (PEM files)."""

    cert: Path
    key: Path
    ca: Path

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes(),
                                            private_key=self.key.read_bytes(),
                                            certificate_chain=self.cert.read_bytes())


def gateway_said(exc: grpc.aio.AioRpcError) -> str:
    """A gateway's refusal or failure, as the page shows it."""
    return f"{exc.code().name}: {exc.details()}"


class GatewayLink:
    def __init__(self, target: str, files: ClientFiles | None, live: LiveView) -> None:
        self.target = target
        self._files = files
        self._live = live
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        """Open the channel and follow the gateway, in the running event loop (an aio channel belongs to one)."""
        self._channel = (grpc.aio.secure_channel(self.target, self._files.credentials()) if self._files
                         else grpc.aio.insecure_channel(self.target))
        self._recognition = recognition_pb2_grpc.RecognitionStub(self._channel)
        self._watchlists = watchlists_pb2_grpc.WatchlistsStub(self._channel)
        self._command_center = command_center_pb2_grpc.CommandCenterStub(self._channel)
        self._tasks = [
            asyncio.create_task(self._follow(lambda: self._recognition.WatchDecisions(
                recognition_pb2.WatchDecisionsRequest(all_decisions=True)),
                lambda event: self._live.decision(self.target, event))),
            asyncio.create_task(self._follow(lambda: self._recognition.WatchAlerts(
                watchlists_pb2.WatchAlertsRequest(with_evidence=True)),
                lambda alert: self._live.alert(self.target, alert))),
            asyncio.create_task(self._follow(self._poll_cameras, lambda cameras: self._live.cameras(self.target,
                                                                                                   cameras))),
        ]

    async def _poll_cameras(self) -> AsyncIterator[command_center_pb2.ListCamerasResponse]:
        while True:
            yield await self._command_center.ListCameras(command_center_pb2.ListCamerasRequest(),
                                                         timeout=CALL_TIMEOUT_S)
            await asyncio.sleep(CAMERAS_EVERY_S)

    async def _follow(self, stream: Callable[[], AsyncIterator], handle: Callable[[object], None]) -> None:
        """Hand every message of the stream on; when it breaks, say so on the page and open it again."""
        failures = 0
        while True:
            try:
                async for message in stream():
                    failures = 0
                    self._live.gateway_state(self.target, "")
                    handle(message)
            except grpc.aio.AioRpcError as exc:
                problem = gateway_said(exc)
                self._live.gateway_state(self.target, problem)
                log.warning("gateway %s: %s", self.target, problem)
            await asyncio.sleep(RECONNECT_S[min(failures, len(RECONNECT_S) - 1)])
            failures += 1

    async def adjudicate(self, alert_id: str, adjudication: str, note: str,
                         user: str) -> watchlists_pb2.AdjudicateResponse:
        response = await self._watchlists.Adjudicate(watchlists_pb2.AdjudicateRequest(
            alert_id=alert_id, adjudication=watchlists_pb2.Adjudication.Value(adjudication), note=note,
            on_behalf_of=user), timeout=CALL_TIMEOUT_S)
        self._live.adjudicated(response)
        return response

    async def record_view(self, user: str, view: str) -> None:
        await self._command_center.RecordView(command_center_pb2.RecordViewRequest(on_behalf_of=user, view=view),
                                              timeout=CALL_TIMEOUT_S)

    async def analytics(self, since: str, until: str) -> command_center_pb2.Analytics:
        return await self._command_center.GetAnalytics(command_center_pb2.GetAnalyticsRequest(since=since,
                                                                                               until=until),
                                                       timeout=CALL_TIMEOUT_S)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._channel.close()
