"""gRPC channels and server credentials: mutual TLS from PEM files, or plaintext where the caller asks for it;
why an address cannot be served on; and a free loopback port for a server process that the tests and benchmarks
start."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

import grpc

from fr_gateway.security.certs import TlsFiles

Request = TypeVar("Request")


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """TLS with a client certificate required and checked against our CA (expiry included) in the handshake."""
    return grpc.ssl_server_credentials([(tls.key, tls.certificate)], root_certificates=tls.ca,
                                       require_client_auth=True)


def balanced(target: str) -> tuple[str, list[tuple[str, object]]]:
    """`HOST:PORT,HOST:PORT,...` (gateway replicas) as one gRPC target that spreads calls round robin over
    the replicas that answer, with the first host as the TLS name; a single address is left as it is."""
    addresses = [address.strip() for address in target.split(",") if address.strip()]
    if len(addresses) < 2:
        return target, []
    return f"ipv4:{','.join(addresses)}", [("grpc.lb_policy_name", "round_robin"),
                                            ("grpc.default_authority", addresses[0])]


def open_channel(target: str, tls: TlsFiles | None = None,
                 options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to a gateway, or to several replicas (comma-separated, balanced round robin): mutual TLS when
    given the client's files, else plaintext (for --insecure servers)."""
    target, balancing = balanced(target)
    options = [*options, *balancing]
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key,
                                               certificate_chain=tls.certificate)
    return grpc.secure_channel(target, credentials, options=options)


class CannotListen(OSError):
    """An address the gateway was told to serve on cannot be bound; the message names it and what sets it."""

    def __init__(self, what: str, address: str, flag: str, setting: str, reason: str | None = None) -> None:
        super().__init__(f"cannot serve {what} on {address}: {reason or why_unbindable(address)}; choose another "
                         f"address with {flag} or the {setting} setting")


def why_unbindable(address: str) -> str:
    """The operating system's reason that HOST:PORT cannot be bound (gRPC says only that binding failed)."""
    host, _, port = address.rpartition(":")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family) as probe:
            probe.bind((host.strip("[]"), int(port)))
    except ValueError:
        return "not HOST:PORT"
    except OSError as exc:
        return exc.strerror or str(exc)
    return "refused by gRPC"


class RequestSource(Generic[Request]):
    """The requests of a client stream, made by the caller's own code (frames, manifest rows): an error raised
    while making one ends the stream, and `check()` raises it again as itself, where gRPC alone reports UNKNOWN
    "Exception iterating requests!" as if the gateway had failed."""

    def __init__(self, requests: Iterable[Request]) -> None:
        self._requests = requests
        self.error: Exception | None = None

    def __iter__(self) -> Iterator[Request]:
        try:
            yield from self._requests
        except Exception as exc:  # kept for check(), which raises it in the caller's thread
            self.error = exc

    def check(self) -> None:
        if self.error is not None:
            raise self.error


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a server process started next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
