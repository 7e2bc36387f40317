"""milvus-lite as a server process of its own on 127.0.0.1, for the tests, the benchmarks and a one-machine
trial of the Milvus backend; a cluster needs none of this, only its URI."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from fr_gateway.transport import free_port

START_TIMEOUT_S = 60


@contextlib.contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """`milvus-lite server` on an ephemeral port, its data in `data_dir`; yields its URI and process once it
    answers, and stops it after."""
    from pymilvus import MilvusClient
    from pymilvus.exceptions import MilvusException

    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "milvus-lite"), "server", "--data-dir",
                               str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                MilvusClient(uri=uri, timeout=2).close()
                break
            except MilvusException:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"milvus-lite did not start on {uri}") from None
                time.sleep(0.3)
        yield uri, server
    finally:
        server.terminate()
        server.wait(30)
