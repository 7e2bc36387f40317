"""INT8 recogniser trial: quantise buffalo_s's ArcFace (w600k_mbf) with ONNX Runtime static quantisation
(QDQ, calibrated on ORL crops), then compare it with FP32 on every face of the sample faces (data/faces): speed, how
far the embeddings move, and whether any Verify or Identify decision changes at the model's thresholds.

    .venv/bin/python benchmarks/int8.py [--out benchmarks/int8] [--model-out DIR]
writes int8.json and int8.md, and the quantised model to --model-out (default benchmarks/int8-model/, not
committed) so it can be tried with the `recognizer_file` setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import version_converter
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from workload import DATA

from fr_gateway.config import load_settings
from fr_gateway.faces.detector import align
from fr_gateway.faces.embedder import FaceEmbedder
from fr_gateway.faces.engine import load_engine, resolve_thresholds
from fr_gateway.faces.images import decode_image
from fr_gateway.faces.models import create_session


def crops_by_person() -> tuple[list[str], list[np.ndarray]]:
    engine = load_engine(load_settings(environ={}))
    labels, crops = [], []
    for photo in sorted(DATA.glob("*/*/*")):
        if photo.suffix.lower() not in (".jpg", ".jpeg", ".png", ".pgm"):
            continue
        image = decode_image(photo.read_bytes(), 1 << 30, 1 << 30)
        faces = engine.detector.detect(image)
        if faces:
            labels.append(f"{photo.parent.parent.name}/{photo.parent.name}")
            crops.append(align(image, faces[0]))
    return labels, crops


class Calibration(CalibrationDataReader):
    """Batches of ORL crops, preprocessed exactly as the embedder feeds the model."""

    def __init__(self, embedder: FaceEmbedder, crops: list[np.ndarray], input_name: str) -> None:
        self._batches = iter([{input_name: embedder.blob(crops[start:start + 16])}
                              for start in range(0, len(crops), 16)])

    def get_next(self):
        return next(self._batches, None)


def speed(embedder: FaceEmbedder, crops: list[np.ndarray], seconds: float = 10.0) -> float:
    batch = [crops[n % len(crops)] for n in range(32)]
    embedder.embed(batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        embedder.embed(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def decisions(labels: list[str], templates: np.ndarray, thresholds) -> dict:
    """Every Verify decision over all pairs, and Identify with the first photo of each person enrolled."""
    pairs = list(itertools.combinations(range(len(labels)), 2))
    scores = np.einsum("ij,ij->i", templates[[a for a, _ in pairs]], templates[[b for _, b in pairs]])
    enrolled: dict[str, int] = {}
    for index, label in enumerate(labels):
        enrolled.setdefault(label, index)
    gallery = sorted(enrolled.values())
    probes = [i for i in range(len(labels)) if i not in set(gallery)]
    best = (templates[probes] @ templates[gallery].T)
    top = best.argmax(axis=1)
    return {"verify_match": scores >= thresholds.verify.value,
            "identify": [gallery[t] if best[n, t] >= thresholds.identify.value else -1 for n, t in enumerate(top)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "int8")
    parser.add_argument("--model-out", type=Path, default=Path(__file__).resolve().parent / "int8-model")
    args = parser.parse_args()
    settings = load_settings(environ={})
    engine = load_engine(settings)
    labels, crops = crops_by_person()
    fp32 = engine.embedder
    args.model_out.mkdir(parents=True, exist_ok=True)
    prepared, int8_path = args.model_out / "prepared.onnx", args.model_out / "w600k_mbf_int8.onnx"
    # per-channel QDQ needs opset 13 (DequantizeLinear with an axis); the pack's model is older
    onnx.save(version_converter.convert_version(onnx.load(str(engine.pack.recognizer_file)), 13), str(prepared))
    quant_pre_process(str(prepared), str(prepared), skip_symbolic_shape=True)
    calibration = [crop for label, crop in zip(labels, crops, strict=True) if label.startswith("orl/")]
    input_name = ort.InferenceSession(str(prepared), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    quantize_static(str(prepared), str(int8_path), Calibration(fp32, calibration, input_name),
                    quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                    activation_type=QuantType.QUInt8)
    prepared.unlink()
    int8 = FaceEmbedder(create_session(int8_path, ["CPUExecutionProvider"], settings.intra_op_threads), str(int8_path))
    a, b = fp32.embed(crops), int8.embed(crops)
    cosine = np.einsum("ij,ij->i", a, b)
    thresholds = resolve_thresholds(settings, engine.pack)
    before, after = decisions(labels, a, thresholds), decisions(labels, b, thresholds)
    verify_flips = int(np.sum(before["verify_match"] != after["verify_match"]))
    identify_flips = int(sum(x != y for x, y in zip(before["identify"], after["identify"], strict=True)))
    fp32_speed, int8_speed = speed(fp32, crops), speed(int8, crops)
    results = {
        "cpus": os.cpu_count(), "faces": len(crops), "calibration_faces": len(calibration),
        "fp32_faces_per_s": round(fp32_speed, 1), "int8_faces_per_s": round(int8_speed, 1),
        "speedup": round(int8_speed / fp32_speed, 2),
        "cosine_fp32_int8": {"mean": round(float(cosine.mean()), 4), "min": round(float(cosine.min()), 4)},
        "verify_pairs": len(before["verify_match"]), "verify_decisions_changed": verify_flips,
        "identify_searches": len(before["identify"]), "identify_decisions_changed": identify_flips,
        "thresholds": {"identify": thresholds.identify.value, "verify": thresholds.verify.value},
        "decisions_preserved": verify_flips == 0 and identify_flips == 0,
    }
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    verdict = ("every decision is the same: selectable with `recognizer_file`" if results["decisions_preserved"]
               else "some decisions change: not offered as a setting")
    table = ("| model | faces/s (batch 32) | cosine to FP32 (mean / min) | Verify decisions changed | "
             "Identify decisions changed |\n| --- | ---: | ---: | ---: | ---: |\n"
             f"| FP32 w600k_mbf | {results['fp32_faces_per_s']} | 1 / 1 | - | - |\n"
             f"| INT8 (static QDQ, per channel) | {results['int8_faces_per_s']} | "
             f"{results['cosine_fp32_int8']['mean']} / {results['cosine_fp32_int8']['min']} | "
             f"{verify_flips} of {results['verify_pairs']} | {identify_flips} of {results['identify_searches']} |\n\n"
             f"INT8 runs at {results['speedup']}x the FP32 speed; {verdict}. {len(crops)} faces of "
             "data/faces; calibration on the ORL crops. Reproduce: `.venv/bin/python benchmarks/int8.py`.\n")
    args.out.with_suffix(".md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
