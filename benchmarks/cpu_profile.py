"""Where a gateway process spends its CPU, by stage: py-spy samples its Python threads while a load runs (each
round looks at every thread that is not idle), each sample goes to the stage of its innermost frame that names
one, and each stage gets its share of the samples of the process's CPU a face (from /proc). And by thread, to
the nanosecond: each thread's CPU from the kernel (threads_cpu), named as Python names it (thread_names, from
py-spy) or as the kernel does (gRPC's core and ONNX Runtime name their own), which splits the CPU by the
gateway's roles (the event loop that reads and answers every stream, recogniser workers, search worker,
audit writer, gRPC's core)."""

from __future__ import annotations

import collections
import contextlib
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
    ("event loop (asyncio, and gRPC's callbacks it runs)", ("asyncio/",)),
    ("guard, servicer, batching", ("fr_gateway/server/", "fr_gateway/batching.py", "fr_gateway/service.py")),
    ("threads, queues and futures", ("threading.py", "queue.py", "concurrent/futures")),
)
OTHER = "other Python"
ROUNDS = "rounds"
WAITING = "waiting"
# innermost frames of a thread blocked on a lock, queue or timer: py-spy does not always see such a thread as
# idle, so its samples are set apart, not counted as CPU
WAITS = ("Condition.wait", "Event.wait", "_worker (", "Thread.join", "sleep (", "EpollSelector.select")


def threads_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """The kernel's name (digits dropped) and the CPU seconds so far of each of the process's live threads, by
    thread id."""
    found: dict[int, tuple[str, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            name = re.sub(r"[\d_-]+$", "", (task / "comm").read_text().strip()) or "unnamed"
            found[int(task.name)] = (name, int((task / "schedstat").read_text().split()[0]) / 1e9)
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Python's names of the process's threads by thread id (from `py-spy dump`; empty without py-spy), digits
    dropped, so the threads of a pool count together."""
    tool = py_spy()
    if tool is None:
        return {}
    dump = subprocess.run([tool, "dump", "--pid", str(pid), "--nonblocking"], capture_output=True, text=True,
                          timeout=60).stdout
    return {int(tid): re.sub(r"[\d_-]+$", "", name) for tid, name in re.findall(r'Thread (\d+) \(\w+\): "([^"]+)"',
                                                                               dump)}


def threads_split(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], faces: float,
                  names: dict[int, str]) -> dict[str, float]:
    """CPU milliseconds a face by thread name between two readings of threads_cpu: Python's name where known,
    else the kernel's."""
    spent: collections.Counter[str] = collections.Counter()
    for tid, (kernel_name, seconds) in after.items():
        spent[names.get(tid, kernel_name)] += 1000 * (seconds - before.get(tid, ("", 0.0))[1]) / faces
    return {name: round(ms, 3) for name, ms in sorted(spent.items(), key=lambda item: -item[1]) if ms >= 0.005}


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
    frame for, such as a thread preempted in native code; the shares are taken to hold for it)."""
    rounds = samples.get(ROUNDS, 0)
    counts = {stage: count for stage, count in samples.items() if stage not in (ROUNDS, WAITING)}
    if not rounds or not faces or not counts:
        return {}
    total = sum(counts.values())
    by_stage = {stage: round(cpu_ms_per_face * count / total, 2)
                for stage, count in sorted(counts.items(), key=lambda item: -item[1])}
    sampled_ms = 1000 * seconds * total / rounds / faces
    return {"ms_per_face": by_stage, "sampled": round(sampled_ms / cpu_ms_per_face, 2)}
