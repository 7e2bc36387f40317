"""Run the console: HTTPS on one address, links to the gateways, until SIGINT or SIGTERM."""

from __future__ import annotations

import dataclasses
import logging
import socket
from pathlib import Path

import uvicorn

from fr_gateway.console.app import Console
from fr_gateway.console.gateways import ClientFiles, GatewayLink
from fr_gateway.console.live import LiveView
from fr_gateway.console.users import UserStore

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConsoleConfig:
    gateways: tuple[str, ...]
    client: ClientFiles | None  # None: plaintext gRPC, to a gateway started --insecure
    listen: str  # HOST:PORT of the HTTPS server; port 0 picks a free one
    https_cert: Path
    https_key: Path
    users: Path


def bind(listen: str) -> socket.socket:
    """The HTTPS socket, bound before anything starts, so a taken port stops the console at once."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, int(port)))
    except (OSError, ValueError) as exc:
        listening.close()
        raise OSError(f"cannot serve the console on {listen}: {getattr(exc, 'strerror', None) or exc}; choose "
                      "another address with --listen") from None
    return listening


def serve(config: ConsoleConfig, port_file: Path | None = None) -> None:
    for path in (config.https_cert, config.https_key):
        if not path.is_file():
            raise FileNotFoundError(f"HTTPS file {path} does not exist: issue one with `fr-gateway certs issue "
                                    "--server console --host NAME`")
    listening = bind(config.listen)
    host, port = listening.getsockname()[:2]
    live = LiveView()

    def ready() -> None:
        log.info("console on https://%s:%d/ for gateways %s", host, port, ", ".join(config.gateways))
        if port_file:
            port_file.write_text(f"{port}\n")

    users = UserStore(config.users)
    console = Console(users, [GatewayLink(target, config.client, live) for target in config.gateways], live, ready)
    server = uvicorn.Server(uvicorn.Config(
        console.app(), ssl_certfile=str(config.https_cert), ssl_keyfile=str(config.https_key), log_level="warning",
        timeout_graceful_shutdown=3, proxy_headers=False, server_header=False))
    try:
        server.run(sockets=[listening])
    finally:
        users.close()
        listening.close()
