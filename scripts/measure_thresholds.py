"""Measure the default Identify and Verify thresholds of a model pack on the labelled faces in ../shared/data/faces.

How:
- every photo goes through the gateway's own LOOSE path (detect, quality gate, align, embed);
- verify: every pair of photos of different people is an impostor pair; the threshold is the smallest
  multiple of 0.05 above the highest impostor score (no false accept on the data), and the true-accept
  rate of all same-person pairs at it is reported;
- identify: one photo per person is enrolled; each person in turn is left out of the gallery and their
  photos are searched (non-mated searches); the threshold is the smallest multiple of 0.05 above the
  highest top-1 non-mated score, never below the verify threshold (a 1:N match claims at least as much
  as a 1:1 match, and the top non-mated score only grows with the gallery); the rank-1 hit rate of
  mated searches at it is reported.
The data is small (hundreds of people would be needed to certify a national operating point): these are
defaults that reject every impostor seen here, to be recalibrated on real KTP-el data.

    .venv/bin/python scripts/measure_thresholds.py [--model-dir DIR] [--out benchmarks/thresholds.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from fr_gateway.config import load_settings
from fr_gateway.faces.crops import CropKind
from fr_gateway.faces.engine import build_cropper, load_engine
from fr_gateway.reasons import Problem

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces"
SETS = ("celebrities", "fr-examples", "orl")
STEP = 0.05


def labelled_photos(root: Path) -> list[tuple[str, Path]]:
    """(identity label, photo) for every photo, the label qualified by its set."""
    return [
        (f"{photo.parent.parent.name}/{photo.parent.name}", photo)
        for name in SETS
        for photo in sorted((root / name).glob("*/*"))
        if photo.suffix.lower() in (".jpg", ".jpeg", ".png", ".pgm")
    ]


def step_above(score: float) -> float:
    return round(math.floor(score / STEP + 1) * STEP, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", default="")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    settings = load_settings(overrides={"model_dir": args.model_dir})
    engine = load_engine(settings)
    cropper = build_cropper(settings, engine.detector)
    labels, templates, failures = [], [], []
    for label, photo in labelled_photos(args.data):
        try:
            crop = cropper.crop(photo.read_bytes(), CropKind.LOOSE)
        except Problem as problem:
            failures.append({"photo": str(photo.relative_to(args.data)), "reason": problem.reason.name})
            continue
        labels.append(label)
        templates.append(engine.embedder.embed([crop])[0])
    matrix = np.stack(templates) @ np.stack(templates).T
    same = np.equal.outer(labels, labels)
    upper = np.triu(np.ones_like(same, dtype=bool), 1)
    genuine, impostor = matrix[same & upper], matrix[~same & upper]
    verify = step_above(float(impostor.max()))

    first: dict[str, int] = {}
    for i, label in enumerate(labels):
        first.setdefault(label, i)
    enrolled = np.array(sorted(first.values()))
    gallery_labels = np.array(labels)[enrolled]
    probes = [i for i in range(len(labels)) if i not in set(enrolled)]
    non_mated_top = []
    for person in first:
        others = gallery_labels != person
        non_mated_top.extend(matrix[i, enrolled[others]].max() for i, lab in enumerate(labels) if lab == person)
    identify = max(verify, step_above(float(max(non_mated_top))))
    mated_scores = matrix[np.ix_(probes, enrolled)]
    best = mated_scores.argmax(axis=1)
    rank1 = gallery_labels[best] == np.array(labels)[probes]
    hit_at_threshold = rank1 & (mated_scores.max(axis=1) >= identify)

    report = {
        "model": engine.pack.name,
        "model_sha256": engine.pack.fingerprint,
        "photos": len(labels) + len(failures),
        "failures_to_acquire": failures,
        "verify": {
            "threshold": verify, "impostor_pairs": int(impostor.size), "genuine_pairs": int(genuine.size),
            "max_impostor": round(float(impostor.max()), 4),
            "true_accept_rate": round(float((genuine >= verify).mean()), 4),
        },
        "identify": {
            "threshold": identify, "gallery": len(enrolled), "mated_searches": len(probes),
            "non_mated_searches": len(non_mated_top), "max_non_mated_top1": round(float(max(non_mated_top)), 4),
            "rank1": round(float(rank1.mean()), 4),
            "rank1_at_threshold": round(float(hit_at_threshold.mean()), 4),
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
