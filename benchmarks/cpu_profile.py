"""Where a gateway process spends its CPU, by stage: py-spy samples its Python threads while a load runs (each
round looks at every thread that is not idle), each sample goes to the stage of its innermost frame that names
one, and each stage gets its share of the samples of the process's CPU a face (from /proc). The CPU of the
process's threads by their kernel name (threads_cpu) shows whether any of it is spent outside Python threads
(gRPC's core runs its polling in the threads that call it, so little is)."""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

RATE_HZ = 100
# (stage, what a frame's "function (file:line)" text contains), tried from the innermost frame outwards
STAGES = (
    ("recogniser (ONNX Runtime)", ("faces/embedder.py", "onnxruntime")),
    ("detector", ("faces/detector.py",)),
    ("decode and crop checks", ("faces/images.py", "faces/crops.py", "faces/quality.py")),
    ("search", ("fr_gateway/search/", "faiss")),
    ("watchlists", ("fr_gateway/watchlists/",)),
    ("audit log", ("fr_gateway/audit/", "cryptography")),
    ("analytics and live events", ("fr_gateway/analytics.py", "server/decisions.py")),
    ("gRPC and protobuf (Python side)", ("grpc/", "google/protobuf")),
    ("guard, servicer, batching", ("fr_gateway/server/", "fr_gateway/batching.py", "fr_gateway/service.py")),
    ("threads, queues and futures", ("threading.py", "queue.py", "concurrent/futures")),
)
OTHER = "other Python"
ROUNDS = "rounds"
WAITING = "waiting"
# innermost frames of a thread blocked on a lock, queue or timer: py-spy does not always see such a thread as
# idle, so its samples are set apart, not counted as CPU
WAITS = ("Condition.wait", "Event.wait", "_worker (", "Thread.join", "sleep (")


def threads_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of the process's live threads, by thread name as the kernel knows it (Python threads
    are all named after the interpreter; gRPC's core and ONNX Runtime name theirs), digits dropped."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = re.sub(r"[\d_-]+$", "", stat[stat.index("(") + 1:stat.rindex(")")]) or "unnamed"
            fields = stat.rsplit(")", 1)[1].split()
            found[name] += (int(fields[11]) + int(fields[12])) / ticks
    return dict(found)


def threads_split(before: dict[str, float], after: dict[str, float], faces: float) -> dict[str, float]:
    """CPU milliseconds a face by thread name between two readings of threads_cpu."""
    spent = {name: 1000 * (seconds - before.get(name, 0.0)) / faces for name, seconds in after.items()}
    return {name: round(ms, 2) for name, ms in sorted(spent.items(), key=lambda item: -item[1]) if ms >= 0.05}


def py_spy() -> str | None:
    found = Path(sys.executable).parent / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


@contextlib.contextmanager
def sampling(pid: int, seconds: float) -> Iterator[dict[str, int]]:
    """Sample process `pid` for `seconds` while the block runs; afterwards the dict holds samples by stage and
    ROUNDS, the rounds made (empty when py-spy is missing or may not attach)."""
    found: dict[str, int] = {}
    tool = py_spy()
    if tool is None:
        yield found
        return
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "samples.txt"
        process = subprocess.Popen([tool, "record", "--pid", str(pid), "--rate", str(RATE_HZ), "--duration",
                                    str(max(1, int(seconds))), "--format", "raw", "--output", str(raw),
                                    "--nonblocking"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            yield found
        finally:
            said, _ = process.communicate(timeout=seconds + 60)
        rounds = re.search(r"Samples: (\d+)", said)
        if process.returncode == 0 and raw.exists() and rounds:
            found.update(by_stage(raw.read_text()), **{ROUNDS: int(rounds.group(1))})
        else:
            print(f"py-spy could not sample the gateway: {said.strip()[-300:]}", file=sys.stderr)


def stage_of(stack: str) -> str:
    frames = stack.split(";")
    if any(wait in frames[-1] for wait in WAITS):
        return WAITING
    for frame in reversed(frames):
        for stage, marks in STAGES:
            if any(mark in frame for mark in marks):
                return stage
    return OTHER


def by_stage(collapsed: str) -> dict[str, int]:
    """Samples by stage from py-spy's raw (collapsed) output: one `frame;frame;... count` line per stack."""
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of(stack)] += int(count)
    return dict(counts)


def cpu_split(samples: dict[str, int], seconds: float, cpu_ms_per_face: float, faces: float) -> dict:
    """CPU milliseconds a face by stage over the `faces` decided in the sampled `seconds`: each stage's share of
    the samples times the process's measured CPU a face; and `sampled`, the share of that CPU the samples account
    for (samples of threads waiting on a lock, queue or timer are left out; the rest is time py-spy saw no Python
    frame for: the process's CPU is all in Python threads by threads_cpu, so the shares are taken to hold for
    it)."""
    rounds = samples.get(ROUNDS, 0)
    counts = {stage: count for stage, count in samples.items() if stage not in (ROUNDS, WAITING)}
    if not rounds or not faces or not counts:
        return {}
    total = sum(counts.values())
    by_stage = {stage: round(cpu_ms_per_face * count / total, 2)
                for stage, count in sorted(counts.items(), key=lambda item: -item[1])}
    sampled_ms = 1000 * seconds * total / rounds / faces
    return {"ms_per_face": by_stage, "sampled": round(sampled_ms / cpu_ms_per_face, 2)}
