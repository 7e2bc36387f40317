"""Labelled evaluation data: a folder per identity (`<root>/<identity>/<image>`), and optionally a pairs file,
either LFW's `pairs.txt` (folds of matched and mismatched pairs) or a CSV `img1,img2,same`."""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
DATA_ENV = "FRG_TEST_DATA"


def sample_faces() -> Path:
    """The labelled photos the tests, the demo and the benchmarks use: FRG_TEST_DATA when set, else the copy
    that ships in the checkout (data/faces), so a clone with nothing beside it runs."""
    return Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[2] / "data" / "faces")


@dataclasses.dataclass(frozen=True)
class Pair:
    first: Path
    second: Path
    same: bool
    fold: int | None = None


@dataclasses.dataclass(frozen=True)
class Dataset:
    """Identities with their images in a stable order, and the labelled pairs when a pairs file came with it."""

    root: Path
    identities: dict[str, list[Path]]
    pairs: list[Pair] = dataclasses.field(default_factory=list)
    sources: tuple[Path, ...] = ()  # the dataset folders it was read from

    @classmethod
    def load(cls, root: str | Path, pairs: str | Path | None = None) -> Dataset:
        root = Path(root)
        identities = {folder.name: images for folder in sorted(root.iterdir()) if folder.is_dir()
                      if (images := sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))}
        if not identities:
            raise ValueError(f"{root}: no identity folders with images (expected <root>/<identity>/<image>)")
        if pairs is None and (root / "pairs.csv").exists():
            pairs = root / "pairs.csv"
        dataset = cls(root, identities, sources=(root,))
        if pairs is None:
            return dataset
        pairs = Path(pairs)
        read = read_csv_pairs if pairs.suffix.lower() == ".csv" else read_lfw_pairs
        return dataclasses.replace(dataset, pairs=read(pairs, dataset))

    @classmethod
    def combine(cls, roots: list[str | Path]) -> Dataset:
        """Several datasets as one gallery: identities named `<set>/<identity>` so sets cannot collide, and
        each set's own pairs file."""
        if len(roots) == 1:
            return cls.load(roots[0])
        parts = [cls.load(root) for root in roots]
        if len({part.root.name for part in parts}) < len(parts):
            raise ValueError(f"datasets need distinct folder names: {[str(part.root) for part in parts]}")
        return cls(Path(os.path.commonpath([part.root for part in parts])),
                   {f"{part.root.name}/{identity}": images for part in parts
                    for identity, images in part.identities.items()},
                   [pair for part in parts for pair in part.pairs], tuple(part.root for part in parts))

    def describe(self) -> dict:
        """Where the data is and the counts a reader needs to judge the figures."""
        return {"sources": [str(source) for source in self.sources], "identities": len(self.identities),
                "images": sum(len(images) for images in self.identities.values()),
                "pairs_same": sum(pair.same for pair in self.pairs),
                "pairs_different": sum(not pair.same for pair in self.pairs)}

    def text(self) -> str:
        counts = self.describe()
        pairs = f", {len(self.pairs)} labelled pairs" if self.pairs else ""
        return (f"{', '.join(source.name for source in self.sources)} ({self.root}): {counts['identities']} "
                f"identities, {counts['images']} images{pairs}")

    def find(self, name: str) -> Path:
        """An image named by its path under the root, or by its file name when that is unique."""
        direct = self.root / name
        if direct.is_file():
            return direct
        found = [image for images in self.identities.values() for image in images if image.name == name]
        if len(found) != 1:
            raise ValueError(f"pairs file names {name!r}: {'not found' if not found else 'ambiguous'} under "
                             f"{self.root}")
        return found[0]


def read_csv_pairs(path: Path, dataset: Dataset) -> list[Pair]:
    with path.open(newline="") as handle:
        return [Pair(dataset.find(row["img1"]), dataset.find(row["img2"]), row["same"].strip() in ("1", "true",
                                                                                                  "True"))
                for row in csv.DictReader(handle)]


def read_lfw_pairs(path: Path, dataset: Dataset) -> list[Pair]:
    """LFW's format: a header `folds pairs_per_half`, then per fold that many matched lines `name n1 n2` and
    as many mismatched lines `name1 n1 name2 n2`; image n of a name is <name>/<name>_<n:04d>.<ext>."""
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    folds, per_half = int(lines[0][0]), int(lines[0][1])

    def image(name: str, number: str) -> Path:
        return dataset.find(f"{name}/{name}_{int(number):04d}.jpg")

    pairs = []
    for n, fields in enumerate(lines[1:]):
        fold = n // (2 * per_half)
        if fold >= folds:
            break
        if len(fields) == 3:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[0], fields[2]), True, fold))
        else:
            pairs.append(Pair(image(fields[0], fields[1]), image(fields[2], fields[3]), False, fold))
    return pairs
