"""Prometheus metrics of the request path, in one place so every stage records into the same names; served
on their own port by the gateway (`metrics_listen`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram, Info

# Stage latencies are milliseconds to a second or so on CPU; the buckets span 0.5 ms to 2.5 s.
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("frgateway_requests", "Audited operations, by RPC (or refused step) and decision",
                   ["operation", "decision"])
STAGE_SECONDS = Histogram("frgateway_stage_seconds", "Time spent per request-path stage", ["stage"],
                          buckets=_STAGE_BUCKETS)
BATCH_SIZE = Histogram("frgateway_batch_size", "Items per micro-batch, by stage (detect, embed, search)", ["stage"],
                       buckets=(1, 2, 4, 8, 16, 32, 64, 128))
MODEL_CPU = Counter("frgateway_model_cpu_seconds", "CPU seconds inside model runs (ONNX Runtime), by model: the "
                    "process's CPU less these is the gateway's own work", ["model"])
FACES_EMBEDDED = Counter("frgateway_faces_embedded", "Faces through the recogniser (rate() gives faces/s)")
QUEUE_DEPTH = Gauge("frgateway_queue_depth", "Items waiting for a micro-batching stage", ["stage"])
OPEN_STREAMS = Gauge("frgateway_open_streams", "Streaming calls open now")
AUDIT_CHECKPOINT = Gauge("frgateway_audit_checkpoint", "Number of the audit log's latest signed checkpoint: a "
                                                       "witness of the log outside the host, when scraped")
WITNESS_FAILURES = Counter("frgateway_audit_witness_failures", "Checkpoints the audit witness file did not take")
WEBHOOK_DELIVERIES = Counter("frgateway_webhook_deliveries", "Alert deliveries to webhooks, by outcome (delivered, "
                                                            "failed: retried later from the outbox)", ["outcome"])
WEBHOOK_PENDING = Gauge("frgateway_webhook_pending", "Alert deliveries waiting in the webhook outbox")
ALERTS = Counter("frgateway_alerts", "Watchlist alerts raised, by list", ["watchlist"])
RUNTIME = Info("frgateway_runtime", "Models, the ONNX Runtime execution providers and the thresholds in use")


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started)
