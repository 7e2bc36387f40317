"""One small evaluation end to end, over gRPC to a gateway in its own process: the counts of searches and
pairs, failures to acquire counted rather than dropped, and an operating point the data cannot show."""

from __future__ import annotations

import shutil

import grpc
from conftest import DATA, launch, stop

from fr_gateway.evaluation.dataset import Dataset
from fr_gateway.evaluation.harness import evaluate, summarise

PEOPLE, IMAGES = 6, 3


def test_evaluation_over_grpc(tmp_path):
    root = tmp_path / "data"
    for person in range(1, PEOPLE + 1):
        folder = root / f"s{person}"
        folder.mkdir(parents=True)
        for image in sorted((DATA / "orl" / f"s{person}").iterdir())[:IMAGES]:
            shutil.copy(image, folder / image.name)
    (root / "s1" / "zz-broken.png").write_bytes(b"not an image")
    (root / "pairs.csv").write_text("img1,img2,same\ns1/1.png,s1/2.png,1\ns2/1.png,s3/1.png,0\n"
                                    "s4/1.png,s4/2.png,1\ns1/zz-broken.png,s2/1.png,0\n")
    dataset = Dataset.load(root)
    server, target = launch(tmp_path, "--insecure", "--gallery", str(tmp_path / "gallery"))
    try:
        with grpc.insecure_channel(target) as channel:
            scores = evaluate(channel, dataset, leave_out_every=3)
    finally:
        stop(server)
    report = summarise(scores)
    identification = report["identification"]
    # s3 and s6 stay out: 4 enrolled people with 2 probes each (s1's broken file fails to acquire), and
    # 2 x 3 non-mated searches
    assert identification["mated_searches"] == 4 * (IMAGES - 1)
    assert identification["non_mated_searches"] == 2 * IMAGES
    assert report["failed_to_acquire"] == {"IMAGE_UNDECODABLE": 1}
    assert identification["rank1"] == 1.0
    pairs = report["verification"]["pairs file"]
    assert (pairs["genuine"], pairs["impostor"]) == (2, 1) and report["pairs_failed"] == {"IMAGE_UNDECODABLE": 1}
    gallery = report["verification"]["gallery templates"]
    assert gallery["genuine"] == 4 * (IMAGES - 1)
    assert gallery["impostor"] == 4 * (IMAGES - 1) * 3 + 2 * IMAGES * 4  # every probe against every template
    far_1e4 = gallery["tar_at_far"][2]
    assert far_1e4["threshold"] is None and far_1e4["needed"] == 10_000
