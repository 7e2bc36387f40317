"""gRPC channels and server credentials: mutual TLS from PEM files, or plaintext where the caller asks for it."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from fr_gateway.security.certs import TlsFiles


def server_credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    """TLS with a client certificate required and checked against our CA (expiry included) in the handshake."""
    return grpc.ssl_server_credentials([(tls.key, tls.certificate)], root_certificates=tls.ca,
                                       require_client_auth=True)


def open_channel(target: str, tls: TlsFiles | None = None,
                 options: Sequence[tuple[str, object]] = ()) -> grpc.Channel:
    """A channel to a gateway: mutual TLS when given the client's files, else plaintext (for --insecure servers)."""
    if tls is None:
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key,
                                               certificate_chain=tls.certificate)
    return grpc.secure_channel(target, credentials, options=options)
