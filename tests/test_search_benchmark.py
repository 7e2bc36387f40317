"""The search benchmark, run small: every row it writes, FAISS's and the Milvus backend's alike, carries the
figure users lose by (identification recall, of the generator's pairs and of the real pairs planted), so the
table can be compared row by row."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from fr_gateway.evaluation.galleries import TemplateShape

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "search.py"
SIZE = 5_000  # big enough to train the default approximate kind; Milvus builds and answers in seconds


def test_every_row_reports_identification_recall_milvus_included(tmp_path):
    enrolled, probes = TemplateShape.load().mated_pairs(np.random.default_rng(5), 40)
    mates = tmp_path / "mates.npz"
    np.savez(mates, enrolled=enrolled, probes=probes)
    out = tmp_path / "search"
    subprocess.run([sys.executable, str(BENCHMARK), "--sizes", str(SIZE), "--kinds", "pqfs", "milvus-lite",
                    "--mates", str(mates), "--out", str(out)], check=True, timeout=600, cwd=tmp_path)

    results = json.loads(out.with_suffix(".json").read_text())
    rows = {row["kind"]: row for row in results["rows"]}
    assert set(rows) == {"pqfs", "milvus-lite HNSW"}
    for row in rows.values():
        assert row["data"] == "realistic" and row["size"] == SIZE
        assert row["identifiable"] > 900 and 0.0 <= row["identification_recall"] <= 1.0
        assert row["planted_identifiable"] > 30 and 0.0 <= row["planted_identification_recall"] <= 1.0
    assert rows["pqfs"]["identification_recall"] >= 0.999  # the default approximate kind, forced at this size
    table = out.with_suffix(".md").read_text()
    for row in rows.values():
        assert f"{row['identification_recall']} of {row['identifiable']}" in table
