"""Run a labelled dataset through a gateway over gRPC, as cameras and verifiers reach it, and turn the answers
into the error rates of `metrics`: enrol one image per identity (a KTP-el gallery has one photo), probe with
the others (mated searches) and with every image of identities kept out of the gallery (non-mated
searches), and score the dataset's pairs with Verify. Failures to enrol and to acquire are counted, never
dropped."""

from __future__ import annotations

import dataclasses
import datetime
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
import numpy as np

from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc, recognition_pb2, recognition_pb2_grpc
from fr_gateway.evaluation.dataset import Dataset
from fr_gateway.evaluation.metrics import MatedSearch, fnir_at_fpir, hit_rate, tar_at_far, ten_fold_accuracy
from fr_gateway.gallery.nik import synthetic_nik
from fr_gateway.server.process import gateway_process

FARS = (1e-2, 1e-3, 1e-4)
FPIRS = (0.1, 0.01, 0.003)
ACQUIRED = (face_pb2.MATCH, face_pb2.NO_MATCH)
LOWEST_SCORE = -1.0  # a non-mated search that returned no candidate: refused at any threshold
TOP_K = 100  # the most candidates a search may ask for: every enrolled identity's score, up to 100 of them


@dataclasses.dataclass
class Scores:
    """What the gateway answered, reduced to scores; kept whole in the report so figures can be recomputed."""

    genuine: list[float] = dataclasses.field(default_factory=list)  # probe vs its own enrolled template
    impostor: list[float] = dataclasses.field(default_factory=list)  # probe vs another identity's template
    mated: list[MatedSearch] = dataclasses.field(default_factory=list)
    non_mated_top: list[float] = dataclasses.field(default_factory=list)
    pair_scores: list[tuple[float, bool, int | None]] = dataclasses.field(default_factory=list)
    failed_to_enrol: Counter[str] = dataclasses.field(default_factory=Counter)
    failed_to_acquire: Counter[str] = dataclasses.field(default_factory=Counter)
    pairs_failed: Counter[str] = dataclasses.field(default_factory=Counter)

    def pair_comparisons(self) -> tuple[list[float], list[float]]:
        """The labelled pairs' scores, genuine and impostor."""
        return ([score for score, same, _ in self.pair_scores if same],
                [score for score, same, _ in self.pair_scores if not same])

    def comparisons(self) -> tuple[list[float], list[float]]:
        """Every 1:1 comparison, genuine and impostor: probes against enrolled templates (Verify by NIK) and
        the labelled pairs of photos (Verify with a reference face)."""
        genuine, impostor = self.pair_comparisons()
        return self.genuine + genuine, self.impostor + impostor

    def as_json(self) -> dict:
        """Every score (4 decimals, as the contract's float32 carries about 7 digits), so figures, plots and
        calibrations can be recomputed from the report alone."""
        def rounded(values: list[float]) -> list[float]:
            return np.round(values, 4).tolist()

        return {"genuine": rounded(self.genuine), "impostor": rounded(self.impostor),
                "mated": [[m.rank, None if m.score is None else round(m.score, 4)] for m in self.mated],
                "non_mated_top": rounded(self.non_mated_top),
                "pairs": [[round(score, 4), same, fold] for score, same, fold in self.pair_scores],
                "failed_to_enrol": dict(self.failed_to_enrol), "failed_to_acquire": dict(self.failed_to_acquire),
                "pairs_failed": dict(self.pairs_failed)}

    @classmethod
    def from_json(cls, data: dict) -> Scores:
        return cls(data["genuine"], data["impostor"], [MatedSearch(rank, score) for rank, score in data["mated"]],
                   data["non_mated_top"], [tuple(pair) for pair in data["pairs"]], Counter(data["failed_to_enrol"]),
                   Counter(data["failed_to_acquire"]), Counter(data["pairs_failed"]))


def enrol(gallery: gallery_pb2_grpc.GalleryStub, dataset: Dataset, enrolled: list[str], scores: Scores
          ) -> dict[str, str]:
    """Each enrolled identity's first image under a NIK of its own; returns NIK -> identity of those accepted."""
    niks = {synthetic_nik(n): identity for n, identity in enumerate(enrolled)}
    summary = gallery.EnrollStream(iter(
        gallery_pb2.EnrollRequest(nik=nik, face=face_pb2.Face(image=dataset.identities[identity][0].read_bytes()))
        for nik, identity in niks.items()), timeout=600)
    for reject in summary.rejects:
        scores.failed_to_enrol[face_pb2.Reason.Name(reject.reason)] += 1
        niks.pop(reject.nik, None)
    return niks


def acquired(call: Callable, request, failures: Counter[str]):
    """The answer when the gateway found and accepted the faces; else None, with the reason counted (a face
    the gateway refuses is a failure to acquire, part of the result)."""
    try:
        answer = call(request, timeout=60)
    except grpc.RpcError as error:
        if error.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        failures[error.details().split(":", 1)[0]] += 1
        return None
    if answer.decision not in ACQUIRED:
        failures[face_pb2.Reason.Name(answer.reason)] += 1
        return None
    return answer


def evaluate(channel: grpc.Channel, dataset: Dataset, leave_out_every: int = 3,
             progress: Callable[[str], None] = lambda _: None) -> Scores:
    """Every `leave_out_every`-th identity stays out of the gallery, for the non-mated searches. The gallery
    behind the channel must be empty: the harness enrols into it."""
    recognition = recognition_pb2_grpc.RecognitionStub(channel)
    identities = list(dataset.identities)
    out = set(identities[leave_out_every - 1::leave_out_every]) if leave_out_every else set()
    scores = Scores()
    niks = enrol(gallery_pb2_grpc.GalleryStub(channel), dataset, [i for i in identities if i not in out], scores)
    enrolled_identity = set(niks.values())
    progress(f"enrolled {len(niks)} identities, {len(out)} kept out")
    for identity, images in dataset.identities.items():
        probes = images if identity not in enrolled_identity else images[1:]
        for image in probes:
            answer = acquired(recognition.Identify, recognition_pb2.IdentifyRequest(
                camera_id="eval", top_k=TOP_K, face=face_pb2.Face(image=image.read_bytes())), scores.failed_to_acquire)
            if answer is None:
                continue
            ranked = [(niks.get(c.nik), c.score) for c in answer.candidates]
            if identity in enrolled_identity:
                rank = next((n for n, (who, _) in enumerate(ranked, start=1) if who == identity), None)
                scores.mated.append(MatedSearch(rank, ranked[rank - 1][1] if rank else None))
            else:
                scores.non_mated_top.append(ranked[0][1] if ranked else LOWEST_SCORE)
            for who, score in ranked:
                (scores.genuine if who == identity else scores.impostor).append(score)
    progress(f"{len(scores.mated)} mated and {len(scores.non_mated_top)} non-mated searches")
    for pair in dataset.pairs:
        answer = acquired(recognition.Verify, recognition_pb2.VerifyRequest(
            probe=face_pb2.Face(image=pair.first.read_bytes()),
            reference_face=face_pb2.Face(image=pair.second.read_bytes())), scores.pairs_failed)
        if answer is None:
            continue
        scores.pair_scores.append((answer.score, pair.same, pair.fold))
    if dataset.pairs:
        progress(f"{len(scores.pair_scores)} of {len(dataset.pairs)} labelled pairs compared")
    return scores


def summarise(scores: Scores) -> dict:
    """The figures, each with the counts behind it; an operating point the data cannot show says so."""
    verify_sets = {"gallery templates": (scores.genuine, scores.impostor)}
    if scores.pair_scores:
        verify_sets["pairs file"] = scores.pair_comparisons()
        verify_sets["all 1:1 comparisons"] = scores.comparisons()
    report = {
        "verification": {name: {"genuine": len(g), "impostor": len(i),
                                 "tar_at_far": [dataclasses.asdict(tar_at_far(g, i, far)) for far in FARS]}
                         for name, (g, i) in verify_sets.items()},
        "identification": {
            "mated_searches": len(scores.mated), "non_mated_searches": len(scores.non_mated_top),
            "rank1": hit_rate(scores.mated, 1), "rank5": hit_rate(scores.mated, 5),
            "fnir_at_fpir": [dataclasses.asdict(fnir_at_fpir(scores.mated, scores.non_mated_top, f))
                             for f in FPIRS]},
        "failed_to_enrol": dict(scores.failed_to_enrol), "failed_to_acquire": dict(scores.failed_to_acquire),
        "pairs_failed": dict(scores.pairs_failed),
    }
    folds = [fold for _, _, fold in scores.pair_scores]
    if scores.pair_scores and all(fold is not None for fold in folds):
        mean, std, _ = ten_fold_accuracy([s for s, _, _ in scores.pair_scores],
                                         [same for _, same, _ in scores.pair_scores], folds)
        report["verification"]["pairs file"]["ten_fold_accuracy"] = {"mean": mean, "std": std}
    report["scores"] = scores.as_json()
    return report


def evaluate_gateway(channel: grpc.Channel, dataset: Dataset, label: str, leave_out_every: int = 3,
                     progress: Callable[[str], None] = lambda _: None) -> dict:
    """One model's run: what the gateway says it runs (model, thresholds in force), the figures and the
    scores. Refuses a gateway whose gallery is not empty: the evaluation enrols people of its own."""
    info = recognition_pb2_grpc.RecognitionStub(channel).GetInfo(recognition_pb2.GetInfoRequest(), timeout=60)
    if info.gallery_size:
        raise ValueError(f"the gateway's gallery holds {info.gallery_size} templates; the evaluation enrols its "
                         "own people and needs a gateway on an empty gallery")
    summary = summarise(evaluate(channel, dataset, leave_out_every, progress))
    return {"label": label, "model": info.model, "model_fingerprint": info.model_fingerprint,
            "providers": list(info.providers), "date": datetime.date.today().isoformat(), "data": dataset.text(),
            "dataset": dataset.describe(), "leave_out_every": leave_out_every,
            "thresholds": {name: {"value": round(threshold.threshold, 4), "origin": threshold.origin}
                           for name, threshold in (("identify", info.identify), ("verify", info.verify))},
            "summary": summary}


def evaluate_models(dataset: Dataset, models: Sequence[tuple[str, dict[str, str]]], scratch: Path,
                    serve_args: Sequence[str] = (), leave_out_every: int = 3,
                    progress: Callable[[str], None] = lambda _: None) -> list[dict]:
    """Each model (a label and its model settings) in a gateway process of its own on an empty gallery
    under `scratch`, plaintext on 127.0.0.1, evaluated as cameras reach it."""
    runs = []
    for n, (label, model_settings) in enumerate(models):
        folder = scratch / f"model-{n}"
        progress(f"{label}: starting a gateway")
        with gateway_process(folder, "--insecure", "--gallery", str(folder / "gallery"), *serve_args,
                             **model_settings) as gateway, grpc.insecure_channel(gateway.target) as channel:
            runs.append(evaluate_gateway(channel, dataset, label, leave_out_every,
                                         lambda line, label=label: progress(f"{label}: {line}")))
    return runs
