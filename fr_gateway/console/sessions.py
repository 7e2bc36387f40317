"""Signed-in browsers and the brake on guessing passwords. A session is a random token in a Secure, HttpOnly,
SameSite=Strict cookie, with its own CSRF token that every change must send back in a header; it ends after
IDLE_S without use or MAX_S in all (a shift). Sessions live in the console's memory: a restart signs everyone
out."""

from __future__ import annotations

import collections
import dataclasses
import secrets
import threading
import time

from fr_gateway.console.users import User

IDLE_S = 30 * 60
MAX_S = 12 * 3600
# wrong passwords allowed within WINDOW_S per name, and per browser address (higher: a control room's browsers
# may reach the console through one address)
FAILURES_PER_NAME = 5
FAILURES_PER_ADDRESS = 20
WINDOW_S = 15 * 60
KEYS_KEPT = 10_000  # names and addresses with recent failures; beyond, those whose failures are old are forgotten


@dataclasses.dataclass
class Session:
    token: str
    user: User
    csrf: str
    started: float
    used: float


class Sessions:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, user: User) -> Session:
        now = time.monotonic()
        session = Session(secrets.token_urlsafe(32), user, secrets.token_urlsafe(32), now, now)
        with self._lock:
            self._sessions = {token: kept for token, kept in self._sessions.items() if self._alive(kept, now)}
            self._sessions[session.token] = session
        return session

    @staticmethod
    def _alive(session: Session, now: float) -> bool:
        return now - session.used < IDLE_S and now - session.started < MAX_S

    def get(self, token: str | None) -> Session | None:
        """The live session of this token, marked as used now."""
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(token or "")
            if session is None or not self._alive(session, now):
                self._sessions.pop(token or "", None)
                return None
            session.used = now
            return session

    def end(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)


class LoginThrottle:
    """After FAILURES_PER_NAME wrong passwords for one name, or FAILURES_PER_ADDRESS from one address, within
    WINDOW_S, every attempt for it is refused, right password or not, until fewer than that many are that
    recent."""

    def __init__(self) -> None:
        self._failures: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        failures = self._failures.setdefault(key, collections.deque())
        while failures and now - failures[0] >= WINDOW_S:
            failures.popleft()
        return failures

    def wait_s(self, name: str, address: str) -> float:
        """Seconds until an attempt for `name` from `address` may be tried; 0 when it may now."""
        now = time.monotonic()
        with self._lock:
            waits = [WINDOW_S - (now - failures[-allowed])
                     for key, allowed in ((f"name:{name}", FAILURES_PER_NAME), (f"address:{address}",
                                                                                FAILURES_PER_ADDRESS))
                     if len(failures := self._recent(key, now)) >= allowed]
        return max(waits, default=0.0)

    def failed(self, name: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > KEYS_KEPT:
                self._failures = {key: kept for key in list(self._failures) if (kept := self._recent(key, now))}
            for key in (f"name:{name}", f"address:{address}"):
                self._recent(key, now).append(now)

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name}", None)
