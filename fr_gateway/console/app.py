"""The console's web application: pages, the live event stream, and the few calls a browser makes. Every page and
call needs a session, every change its CSRF token, analytics a supervisor, and every opening of the live stream
or the analytics an audit record at each gateway before any data is sent."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from importlib import resources
from pathlib import Path

import grpc
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from fr_gateway.console.gateways import GatewayLink, gateway_said
from fr_gateway.console.live import LiveView
from fr_gateway.console.sessions import LoginThrottle, Session, Sessions
from fr_gateway.console.users import User, UserStore
from fr_gateway.contract import command_center_pb2

STATIC = Path(str(resources.files("fr_gateway.console") / "static"))
SESSION_COOKIE = "__Host-frc-session"
LOGIN_COOKIE = "__Host-frc-login"
CSRF_HEADER = "x-csrf-token"
ADJUDICATIONS = {"CONFIRMED", "DISMISSED"}
NOTE_LIMIT = 1024
ANALYTICS_DAYS = (1, 7, 30, 92)
# the counts of a camera's hour, as the contract names them
HOUR_COUNTS = tuple(field.name for field in command_center_pb2.CameraHour.DESCRIPTOR.fields
                    if field.type == field.TYPE_UINT64)
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'; form-action 'self'",
    "strict-transport-security": "max-age=31536000",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    """The same protective headers on every answer, pages, events and errors alike."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *((name.encode(), value.encode())
                                                             for name, value in HEADERS.items())]
            await send(message)

        await self._app(scope, receive, with_headers if scope["type"] == "http" else send)


async def refusal(request: Request, exc: Exception) -> Response:
    """A refused call: JSON {"error": ...} for the page's scripts, plain words for a page."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)
    return Response(str(exc.detail), exc.status_code, headers=exc.headers, media_type="text/plain")


# every cookie of the console: HTTPS only, out of scripts' reach, never sent by another site's page
COOKIE = {"path": "/", "secure": True, "httponly": True, "samesite": "strict"}


def set_cookie(response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(name, value, max_age=max_age, **COOKIE)


class Console:
    """The routes, over the console's users, sessions, live view and gateway links."""

    def __init__(self, users: UserStore, links: Sequence[GatewayLink], live: LiveView,
                 on_ready: Callable[[], None] | None = None) -> None:
        self.users = users
        self.links = list(links)
        self.live = live
        self.sessions = Sessions()
        self.throttle = LoginThrottle()
        self._on_ready = on_ready

    def app(self) -> Starlette:
        routes = [
            Route("/", self.live_page),
            Route("/analytics", self.analytics_page),
            Route("/login", lambda request: FileResponse(STATIC / "login.html")),
            Route("/api/login", self.login_token, methods=["GET"]),
            Route("/api/login", self.login, methods=["POST"]),
            Route("/api/logout", self.logout, methods=["POST"]),
            Route("/api/session", self.session_info),
            Route("/api/events", self.events),
            Route("/api/alerts/{alert_id}/adjudication", self.adjudicate, methods=["POST"]),
            Route("/api/analytics", self.analytics),
            Mount("/static", StaticFiles(directory=STATIC)),
        ]
        app = Starlette(routes=routes, lifespan=self._lifespan, exception_handlers={HTTPException: refusal})
        app.add_middleware(SecurityHeaders)
        return app

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        for link in self.links:
            link.start()
        ticker = asyncio.create_task(self._tick())
        if self._on_ready:
            self._on_ready()
        try:
            yield
        finally:
            ticker.cancel()
            for link in self.links:
                await link.close()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.live.tick()

    # who is asking

    def _session(self, request: Request, change: bool = False, supervisor: bool = False) -> Session:
        """The caller's session: 401 without one, 403 for a change without its CSRF token or a page beyond the
        user's role."""
        session = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise HTTPException(401, "sign in first")
        if change and not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), session.csrf):
            raise HTTPException(403, "missing or wrong CSRF token")
        if supervisor and not session.user.supervisor:
            raise HTTPException(403, "supervisors only")
        return session

    async def _page(self, request: Request, view: str, file: str, supervisor: bool = False) -> Response:
        """A page's markup, for a signed-in user of its role; its data comes from the API, which audits it."""
        try:
            self._session(request, supervisor=supervisor)
        except HTTPException as refused:
            if refused.status_code == 401:
                return RedirectResponse("/login", 303)
            return Response(f"{refused.detail}: the {view} page", refused.status_code, media_type="text/plain")
        return FileResponse(STATIC / file)

    async def _record_view(self, session: Session, view: str) -> None:
        """Personal data is shown only once every gateway has recorded who is looking at it: 503 otherwise."""
        try:
            await asyncio.gather(*(link.record_view(session.user.name, view) for link in self.links))
        except grpc.aio.AioRpcError as exc:
            raise HTTPException(503, f"this view cannot be recorded in the audit log ({gateway_said(exc)}), so it "
                                     "is not shown") from None

    async def live_page(self, request: Request) -> Response:
        return await self._page(request, "live", "live.html")

    async def analytics_page(self, request: Request) -> Response:
        return await self._page(request, "analytics", "analytics.html", supervisor=True)

    # signing in and out

    async def login_token(self, request: Request) -> Response:
        """A token for the sign-in form, set as a cookie too: the form must send both (double submit)."""
        token = secrets.token_urlsafe(32)
        response = JSONResponse({"token": token})
        set_cookie(response, LOGIN_COOKIE, token, max_age=600)
        return response

    async def login(self, request: Request) -> Response:
        expected = request.cookies.get(LOGIN_COOKIE, "")
        if not expected or not secrets.compare_digest(request.headers.get(CSRF_HEADER, ""), expected):
            raise HTTPException(403, "missing or wrong CSRF token: reload the sign-in page")
        try:
            form = await request.json()
            name, password = str(form["name"]), str(form["password"])
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, "send JSON with name and password") from None
        address = request.client.host if request.client else ""
        if wait := self.throttle.wait_s(name, address):
            return JSONResponse({"error": f"too many wrong passwords: try again in {wait / 60:.0f} min"}, 429,
                                headers={"retry-after": str(int(wait) + 1)})
        user: User | None = await asyncio.to_thread(self.users.authenticate, name, password)
        if user is None:
            self.throttle.failed(name, address)
            return JSONResponse({"error": "wrong name or password"}, 401)
        self.throttle.succeeded(name)
        session = self.sessions.start(user)
        response = JSONResponse({"user": user.name, "role": user.role})
        set_cookie(response, SESSION_COOKIE, session.token)
        response.delete_cookie(LOGIN_COOKIE, **COOKIE)
        return response

    async def logout(self, request: Request) -> Response:
        session = self._session(request, change=True)
        self.sessions.end(session.token)
        response = JSONResponse({"signed_out": session.user.name})
        response.delete_cookie(SESSION_COOKIE, **COOKIE)
        return response

    async def session_info(self, request: Request) -> Response:
        session = self._session(request)
        return JSONResponse({"user": session.user.name, "role": session.user.role, "csrf": session.csrf,
                             "gateways": [link.target for link in self.links]})

    # the live view

    async def events(self, request: Request) -> Response:
        await self._record_view(self._session(request), "live")
        browser = self.live.connect()

        async def stream() -> AsyncIterator[dict]:
            try:
                yield {"event": "snapshot", "data": json.dumps(self.live.snapshot())}
                while True:
                    kind, data = await browser.get()
                    yield {"event": kind, "data": json.dumps(data)}
            finally:
                self.live.disconnect(browser)

        return EventSourceResponse(stream(), ping=15)

    async def adjudicate(self, request: Request) -> Response:
        session = self._session(request, change=True)
        alert_id = request.path_params["alert_id"]
        try:
            form = await request.json()
            adjudication, note = str(form["adjudication"]), str(form.get("note", ""))
        except (ValueError, KeyError, TypeError):
            raise HTTPException(400, "send JSON with adjudication and note") from None
        if adjudication not in ADJUDICATIONS or len(note) > NOTE_LIMIT:
            raise HTTPException(400, f"adjudication is one of {', '.join(sorted(ADJUDICATIONS))}, with a note of at "
                                     f"most {NOTE_LIMIT} characters")
        target = self.live.gateway_of(alert_id)
        link = next((link for link in self.links if link.target == target), None)
        if link is None:
            raise HTTPException(404, "no such alert on this console")
        try:
            response = await link.adjudicate(alert_id, adjudication, note, session.user.name)
        except grpc.aio.AioRpcError as exc:
            raise HTTPException(http_status(exc.code()), gateway_said(exc)) from None
        return JSONResponse({"alert_id": response.alert_id, "adjudicated_by": response.adjudicated_by,
                             "time": response.time})

    # analytics

    async def analytics(self, request: Request) -> Response:
        session = self._session(request, supervisor=True)
        try:
            days = int(request.query_params.get("days", "7"))
        except ValueError:
            days = 0
        if days not in ANALYTICS_DAYS:
            raise HTTPException(400, f"days is one of {', '.join(map(str, ANALYTICS_DAYS))}")
        now = datetime.datetime.now(datetime.UTC)
        since, until = (moment.isoformat().replace("+00:00", "Z") for moment in
                        (now - datetime.timedelta(days=days), now))
        await self._record_view(session, "analytics")
        try:
            answers = await asyncio.gather(*(link.analytics(since, until) for link in self.links))
        except grpc.aio.AioRpcError as exc:
            raise HTTPException(503, gateway_said(exc)) from None
        return JSONResponse(merged_analytics(answers, since, until))


def merged_analytics(answers: Sequence, since: str, until: str) -> dict:
    """Every gateway's rows side by side (replicas count their own faces; the page adds up rows that share a
    camera and hour, a list and day, or an operation and decision)."""
    return {"since": since, "until": until,
            "hours": [{"camera": hour.camera_id, "hour": hour.hour, "reasons": dict(hour.reasons),
                       **{field: getattr(hour, field) for field in HOUR_COUNTS}}
                      for answer in answers for hour in answer.hours],
            "watchlist_days": [{"watchlist": day.watchlist, "day": day.day, "alerts": day.alerts,
                                "confirmed": day.confirmed, "dismissed": day.dismissed}
                               for answer in answers for day in answer.watchlist_days],
            "audit_days": [{"day": day.day, "operation": day.operation, "decision": day.decision,
                            "records": day.records} for answer in answers for day in answer.audit_days]}


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status a browser gets for a gateway's refusal."""
    return {grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.FAILED_PRECONDITION: 409,
            grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.INVALID_ARGUMENT: 400,
            grpc.StatusCode.PERMISSION_DENIED: 403}.get(code, 503)
