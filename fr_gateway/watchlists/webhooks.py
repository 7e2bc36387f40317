"""Alerts to other agencies' systems: each alert is POSTed as JSON to every configured endpoint, signed with
HMAC-SHA256 over the timestamp and the body (the scheme receivers verify with `verify`), from the durable
outbox the alert was committed with; a failed delivery is retried with backoff, across restarts, until the
endpoint answers 2xx.

A receiver checks, with the shared secret:
    X-FRG-Timestamp: seconds since the epoch when the delivery was signed (refuse one older than 5 minutes)
    X-FRG-Signature: "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body)
and, being sent an alert again after a lost answer, ignores an alert_id it has already taken."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from fr_gateway.metrics import WEBHOOK_DELIVERIES, WEBHOOK_PENDING
from fr_gateway.security.keys import exposed, private_file
from fr_gateway.watchlists.store import WatchlistStore

log = logging.getLogger(__name__)

TIMESTAMP_HEADER = "X-FRG-Timestamp"
SIGNATURE_HEADER = "X-FRG-Signature"
TOLERANCE_S = 300
TIMEOUT_S = 5.0
LONGEST_WAIT_S = 300.0  # between retries of one delivery


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "v1=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signed: str, now: float | None = None,
           tolerance: float = TOLERANCE_S) -> bool:
    """True when `signed` is the signature of this body at this timestamp and the timestamp is recent: a
    changed body, a changed timestamp and a replayed old delivery all fail."""
    try:
        age = (time.time() if now is None else now) - int(timestamp)
    except ValueError:
        return False
    return abs(age) <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), signed)


def load_secret(path: Path) -> bytes:
    """The shared secret (hex in a 0600 file), made when missing: give it to the receivers out of band."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(private_file(path), "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        log.warning("created the webhook secret in %s: give it to each receiver, which checks every alert with it",
                    path)
    if why := exposed(path, "webhook secret"):
        raise ValueError(why)
    return path.read_text().strip().encode()


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4, ... up to five minutes."""
    return min(LONGEST_WAIT_S, 2.0 ** attempts)


class WebhookSender:
    """One thread that delivers what the outbox holds, oldest due first; woken by each new alert."""

    def __init__(self, store: WatchlistStore, secret: bytes, ca_file: str = "") -> None:
        self._store = store
        self._secret = secret
        self._tls = ssl.create_default_context(cafile=ca_file or None)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="webhooks", daemon=True)

    def start(self) -> WebhookSender:
        """What a stopped gateway left undelivered is tried at once."""
        self._store.retry_now(time.time())
        self._thread.start()
        return self

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            due = self._store.due(time.time())
            for delivery in due:
                if self._stopping.is_set():
                    return
                error = self._post(delivery.endpoint, delivery.body)
                if error is None:
                    self._store.delivered(delivery.delivery, time.time())
                    WEBHOOK_DELIVERIES.labels("delivered").inc()
                else:
                    wait = backoff(delivery.attempts)
                    log.warning("alert %s to %s not delivered (%s); next try in %.0f s", delivery.alert_id,
                                delivery.endpoint, error, wait)
                    self._store.retry_later(delivery.delivery, time.time() + wait, error)
                    WEBHOOK_DELIVERIES.labels("failed").inc()
            WEBHOOK_PENDING.set(self._store.pending())
            if not due:
                self._wake.wait(1.0)
                self._wake.clear()

    def _post(self, endpoint: str, body: bytes) -> str | None:
        """None when the endpoint took the alert (2xx), else what went wrong."""
        timestamp = str(int(time.time()))
        request = urllib.request.Request(endpoint, data=body, method="POST", headers={
            "Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(self._secret, timestamp, body)})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S, context=self._tls) as answer:
                return None if 200 <= answer.status < 300 else f"HTTP {answer.status}"
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            return str(getattr(exc, "reason", exc))

    def close(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=TIMEOUT_S + 1)
