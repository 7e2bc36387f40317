"""An evaluation report for people: `eval.json` with every figure and score, `report.md` with the figures and
the counts behind them (an operating point the data cannot show is said, not printed), and DET and ROC plots."""

from __future__ import annotations

import json
from pathlib import Path

from matplotlib.figure import Figure  # the object API draws to files with no display and no pyplot state

from fr_gateway.evaluation.calibrate import identify_point, verify_point
from fr_gateway.evaluation.harness import FARS, FPIRS, Scores
from fr_gateway.evaluation.metrics import det, roc


def _fraction(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".") if value else "0"


def _at_target(point: dict, negatives: str) -> str:
    if point["threshold"] is None:
        return f"not shown: {point['count']} {negatives}, needs {point['needed']}"
    return f"{_fraction(point['rate'])} (t {point['threshold']:.4f})"


def _identification(runs: list[dict]) -> list[str]:
    lines = ["| model | mated searches | non-mated searches | rank-1 | rank-5 | "
             + " | ".join(f"FNIR at FPIR {f:g}" for f in FPIRS) + " |",
             "| --- | ---: | ---: | ---: | ---: |" + " --- |" * len(FPIRS)]
    for run in runs:
        ident = run["summary"]["identification"]
        cells = [_at_target(point, "non-mated searches") for point in ident["fnir_at_fpir"]]
        lines.append(f"| {run['label']} | {ident['mated_searches']} | {ident['non_mated_searches']} | "
                     f"{_fraction(ident['rank1'])} | {_fraction(ident['rank5'])} | {' | '.join(cells)} |")
    return lines


def _verification(runs: list[dict]) -> list[str]:
    lines = ["| model | comparisons | genuine | impostor | " + " | ".join(f"TAR at FAR {f:g}" for f in FARS)
             + " | 10-fold accuracy |", "| --- | --- | ---: | ---: |" + " --- |" * len(FARS) + " ---: |"]
    for run in runs:
        for name, figures in run["summary"]["verification"].items():
            cells = [_at_target(point, "impostor comparisons") for point in figures["tar_at_far"]]
            folds = figures.get("ten_fold_accuracy")
            accuracy = f"{folds['mean']:.4f} ± {folds['std']:.4f}" if folds else "no folds in the pairs file"
            lines.append(f"| {run['label']} | {name} | {figures['genuine']} | {figures['impostor']} | "
                         f"{' | '.join(cells)} | {accuracy} |")
    return lines


def _at_thresholds(runs: list[dict]) -> list[str]:
    lines = ["| model | Identify threshold | FPIR | FNIR | Verify threshold | FAR | TAR |",
             "| --- | --- | --- | ---: | --- | --- | ---: |"]
    for run in runs:
        scores = Scores.from_json(run["summary"]["scores"])
        identify, verify = run["thresholds"]["identify"], run["thresholds"]["verify"]
        ident, ver = identify_point(scores, identify["value"]), verify_point(scores, verify["value"])
        lines.append(f"| {run['label']} | {identify['value']:.4f} ({identify['origin']}) | {ident.false_rate_text()} | "
                     f"{_fraction(ident.other_rate)} | {verify['value']:.4f} ({verify['origin']}) | "
                     f"{ver.false_rate_text()} | {_fraction(ver.other_rate)} |")
    return lines


def _margins(runs: list[dict]) -> list[str]:
    """How far apart the two kinds of score lie: where no error is seen, the margin is what the data shows."""
    lines = ["| model | lowest top score of a found mate | highest top score of a non-mated search | "
             "lowest genuine comparison | highest impostor comparison |", "| --- | ---: | ---: | ---: | ---: |"]
    for run in runs:
        scores = Scores.from_json(run["summary"]["scores"])
        mates = [m.score for m in scores.mated if m.rank == 1 and m.score is not None]
        genuine, impostor = scores.comparisons()
        cells = [min(mates, default=None), max(scores.non_mated_top, default=None), min(genuine, default=None),
                 max(impostor, default=None)]
        lines.append(f"| {run['label']} | " + " | ".join("-" if c is None else f"{c:.4f}" for c in cells) + " |")
    return lines


def _failures(runs: list[dict]) -> list[str]:
    def counts(found: dict[str, int]) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in sorted(found.items())) or "none"

    lines = ["| model | failed to enrol | failed to acquire (searches) | pairs not compared |",
             "| --- | --- | --- | --- |"]
    for run in runs:
        summary = run["summary"]
        lines.append(f"| {run['label']} | {counts(summary['failed_to_enrol'])} | "
                     f"{counts(summary['failed_to_acquire'])} | {counts(summary['pairs_failed'])} |")
    return lines


def markdown(runs: list[dict], command: str) -> str:
    first = runs[0]
    ident = first["summary"]["identification"]
    dataset = first["dataset"]
    lines = [
        "# Accuracy report", "",
        f"Measured over gRPC on {first['date']}: each model ran in an `fr-gateway serve` process of its own and "
        "was sent whole photos (LOOSE), as cameras and verifiers send them, so every figure includes detection, "
        "the quality gate, alignment, embedding and search.", "",
        f"Reproduce: `{command}`", "",
        f"Data: {first['data']}. The gallery holds the first image of each enrolled identity (a KTP-el gallery "
        f"has one photo per person); one identity in {first['leave_out_every']} stays out of it, and its images "
        f"are the non-mated searches. Every other image is a mated search ({ident['mated_searches']} for the "
        f"first model). Verification scores each search's probe against every enrolled template (what Verify "
        "by NIK compares) and, when the data has a pairs file, each labelled pair of photos.", "",
        "Rates are shares: FNIR is the share of mated searches whose mate is not the top candidate at or above "
        "the threshold; FPIR the share of non-mated searches whose top candidate reaches it; TAR and FAR the "
        "shares of genuine and impostor comparisons accepted. `t` is the threshold that reaches the target on "
        "this data.", "",
        "## Identification (1:N)", "", *_identification(runs), "",
        "## Verification (1:1)", "", *_verification(runs), "",
        "## At the thresholds each gateway ran", "",
        "A false rate measured as zero is reported with its 95% upper bound (3/n), which is what the data "
        "can say.", "", *_at_thresholds(runs), "",
        "## Score margins", "",
        "The nearest scores of the two kinds, over both the gallery templates and the pairs file.", "",
        *_margins(runs), "",
        "## Failures to enrol and to acquire", "",
        "Counted, not dropped: a probe the gateway refuses (no face, rejected by the quality gate, unreadable) "
        "is a failure to acquire and is left out of the rates above.", "", *_failures(runs), "",
        "## Curves", "", "![DET: FNIR against FPIR](det.png)", "", "![ROC: TAR against FAR](roc.png)", "",
        "![Score distributions with the thresholds in force](scores.png)", "",
        "## What this data can and cannot say", "",
        f"{dataset['identities']} identities and {dataset['images']} images are enough to show that the "
        "pipeline works and to give rough error rates at FPIR 0.1 and 0.01 and FAR down to about "
        f"1/{max(len(run['summary']['scores']['impostor']) for run in runs)}. They cannot certify an operating "
        "point for a national gallery: a false rate needs at least 1/rate negatives to be shown at all, and "
        "many times that to be shown with confidence; the top non-mated score also grows with the gallery, so "
        "FPIR measured on a small gallery understates it on millions of templates. Calibrate again on "
        "KTP-el data before deployment.", "",
    ]
    return "\n".join(lines)


def _distributions(axes, run: dict) -> None:
    scores = Scores.from_json(run["summary"]["scores"])
    bins = [n / 50 - 0.2 for n in range(61)]  # cosine -0.2 to 1.0
    genuine, impostor = scores.comparisons()
    for values, label in ((impostor, "impostor comparisons"), (scores.non_mated_top, "non-mated top scores"),
                          (genuine, "genuine comparisons")):
        axes.hist(values, bins=bins, density=True, histtype="step", label=f"{label} ({len(values)})")
    for name, style in (("identify", "--"), ("verify", ":")):
        threshold = run["thresholds"][name]
        axes.axvline(threshold["value"], color="black", linestyle=style,
                     label=f"{name.capitalize()} threshold {threshold['value']:.2f}")
    axes.set_yscale("log")
    axes.set_title(run["label"], fontsize=9)
    axes.set_xlabel("cosine similarity")
    axes.legend(fontsize=7)


def plot(runs: list[dict], folder: Path) -> list[Path]:
    """det.png (FNIR against FPIR) and roc.png (TAR against FAR), one line per model and comparison set, with
    log-scale false rates, so rates seen as zero are off the left edge; and scores.png, each model's score
    distributions with its thresholds, which shows the margin where the curves show no error."""
    det_figure, roc_figure = Figure(figsize=(7, 5)), Figure(figsize=(7, 5))
    det_axes, roc_axes = det_figure.subplots(), roc_figure.subplots()
    score_figure = Figure(figsize=(7, 2.6 * len(runs)))
    for run, axes in zip(runs, score_figure.subplots(len(runs), 1, squeeze=False)[:, 0], strict=True):
        _distributions(axes, run)
    for run in runs:
        scores = Scores.from_json(run["summary"]["scores"])
        curve = [(fpir, miss) for _, fpir, miss in det(scores.mated, scores.non_mated_top) if fpir > 0]
        if curve:
            det_axes.step(*zip(*curve, strict=True), where="post", label=run["label"])
        points = [(far, tar) for _, far, tar in roc(*scores.comparisons()) if far > 0]
        if points:
            roc_axes.step(*zip(*points, strict=True), where="post", label=f"{run['label']}, all 1:1 comparisons")
    for axes, x, y, title in ((det_axes, "FPIR (non-mated searches matched)", "FNIR (mated searches missed)",
                               "Identification: DET"),
                              (roc_axes, "FAR (impostor comparisons accepted)", "TAR (genuine comparisons accepted)",
                               "Verification: ROC")):
        axes.set_xscale("log")
        axes.set_xlabel(x)
        axes.set_ylabel(y)
        axes.set_title(title)
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    written = []
    for figure, name in ((det_figure, "det.png"), (roc_figure, "roc.png"), (score_figure, "scores.png")):
        figure.tight_layout()
        figure.savefig(folder / name, dpi=110)
        written.append(folder / name)
    return written


def write_report(folder: Path, runs: list[dict], command: str) -> list[Path]:
    """eval.json, report.md, det.png and roc.png in `folder`; returns what was written."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "eval.json").write_text(json.dumps({"command": command, "runs": runs}, indent=1) + "\n")
    (folder / "report.md").write_text(markdown(runs, command))
    return [folder / "eval.json", folder / "report.md", *plot(runs, folder)]
