"""gRPC channels and server credentials: mutual TLS from PEM files, or plaintext where the caller asks for it;
and a free loopback port for a server process that the tests and benchmarks start."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import grpc

from fr_gateway.security.certs import TlsFiles


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


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now, for a server process started next."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
