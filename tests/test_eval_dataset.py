"""Dataset layouts the evaluation reads: a folder per identity, LFW's pairs.txt with its folds, a CSV of pairs,
and several datasets combined into one gallery without their identities colliding."""

from __future__ import annotations

from pathlib import Path

import pytest

from fr_gateway.evaluation.dataset import Dataset


def make(root: Path, people: dict[str, int], suffix: str = ".jpg") -> Path:
    for name, count in people.items():
        (root / name).mkdir(parents=True)
        for n in range(1, count + 1):
            (root / name / f"{name}_{n:04d}{suffix}").write_bytes(b"")
    (root / "notes.txt").write_text("not an identity")
    return root


def test_lfw_pairs_file_gives_folds_of_matched_then_mismatched_pairs(tmp_path):
    root = make(tmp_path / "lfw", {"Ann": 3, "Bob": 2, "Cy": 1})
    (tmp_path / "pairs.txt").write_text("2\t1\nAnn\t1\t2\nBob\t1\tCy\t1\nBob\t1\t2\nAnn\t3\tCy\t1\n")
    dataset = Dataset.load(root, tmp_path / "pairs.txt")
    assert [(p.first.name, p.second.name, p.same, p.fold) for p in dataset.pairs] == [
        ("Ann_0001.jpg", "Ann_0002.jpg", True, 0), ("Bob_0001.jpg", "Cy_0001.jpg", False, 0),
        ("Bob_0001.jpg", "Bob_0002.jpg", True, 1), ("Ann_0003.jpg", "Cy_0001.jpg", False, 1)]
    assert list(dataset.identities) == ["Ann", "Bob", "Cy"]


def test_csv_pairs_name_images_by_path_or_unique_file_name(tmp_path):
    root = make(tmp_path / "set", {"a": 2, "b": 1})
    (root / "pairs.csv").write_text("img1,img2,same\na/a_0001.jpg,a_0002.jpg,1\nb_0001.jpg,a_0001.jpg,0\n")
    dataset = Dataset.load(root)  # pairs.csv in the folder is read with it
    assert [(p.same, p.fold) for p in dataset.pairs] == [(True, None), (False, None)]
    (root / "pairs.csv").write_text("img1,img2,same\nmissing.jpg,a_0001.jpg,0\n")
    with pytest.raises(ValueError, match=r"missing\.jpg.*not found"):
        Dataset.load(root)


def test_combined_datasets_keep_identities_apart_and_say_what_they_hold(tmp_path):
    first = make(tmp_path / "one", {"s1": 2, "s2": 1})
    second = make(tmp_path / "two", {"s1": 3})
    (second / "pairs.csv").write_text("img1,img2,same\ns1_0001.jpg,s1_0002.jpg,1\n")
    dataset = Dataset.combine([first, second])
    assert list(dataset.identities) == ["one/s1", "one/s2", "two/s1"]
    assert dataset.describe() == {"sources": [str(first), str(second)], "identities": 3, "images": 6,
                                  "pairs_same": 1, "pairs_different": 0}
    assert dataset.text().startswith("one, two (")
    with pytest.raises(ValueError, match="no identity folders"):
        Dataset.load(tmp_path / "one" / "s2")
