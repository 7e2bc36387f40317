"""The camera side: tracking turns a person walking past into a few crops, the client rides out a gateway
restart without losing its place in the video, and the operator's view boxes and names each face."""

from __future__ import annotations

import threading

import cv2
import numpy as np
from conftest import ENROLLED, nik_for, photos, start_gateway

from fr_gateway.camera.client import CameraClient, DecisionRecord
from fr_gateway.camera.display import Overlay, VideoFile
from fr_gateway.camera.sources import Frame
from fr_gateway.camera.tracking import FaceTracker, TrackedFace
from fr_gateway.contract import face_pb2, gallery_pb2, gallery_pb2_grpc
from fr_gateway.faces.detector import DetectedFace
from fr_gateway.transport import open_channel

NO_LANDMARKS = np.zeros((5, 2), dtype=np.float32)


def face(x: float, side: float = 100.0, score: float = 0.9) -> DetectedFace:
    return DetectedFace((x, 100.0, x + side, 100.0 + side), score, NO_LANDMARKS)


def test_one_person_walking_past_is_one_track_with_few_crops():
    tracker = FaceTracker("CAM", max_sends=3, improvement=1.25)
    sent, tracks = 0, set()
    for step in range(25):  # one second at 25 frames/s, drifting right and growing, as someone approaching
        [tracked] = tracker.update(40.0 * step, [face(100 + 4 * step, side=80 + 3 * step)])
        tracks.add(tracked.track_id)
        sent += tracked.send
    assert tracks == {"CAM-t1"}
    assert 1 <= sent <= 3


def test_two_people_side_by_side_are_two_tracks_and_a_new_arrival_a_third():
    tracker = FaceTracker("CAM", max_gap_ms=100)
    first = tracker.update(0, [face(50), face(400)])
    again = tracker.update(40, [face(55), face(405)])
    assert [t.track_id for t in first] == [t.track_id for t in again] and len({t.track_id for t in first}) == 2
    assert [t.send for t in first] == [True, True] and [t.send for t in again] == [False, False]
    later = tracker.update(200, [face(55)])  # both tracks ended: unseen for more than 100 ms
    assert later[0].track_id not in {t.track_id for t in first} and later[0].send


def frames_of(people: list[int], per_person: int) -> list[Frame]:
    """A person per stretch of frames, alternating between two places in the picture."""
    out = []
    for number, person in enumerate(people):
        image = cv2.imread(str(photos(*ENROLLED[person])[1]))
        image = cv2.resize(image, None, fx=200 / image.shape[0], fy=200 / image.shape[0])[:, :240]
        for _ in range(per_person):
            canvas = np.full((480, 640, 3), 40, dtype=np.uint8)
            left = 40 if number % 2 == 0 else 360
            canvas[140:140 + image.shape[0], left:left + image.shape[1]] = image
            out.append(Frame(len(out), len(out) * 100.0, canvas))
    return out


def test_the_camera_reconnects_after_a_gateway_restart_and_goes_on(engine, tmp_path):
    gallery = tmp_path / "g"
    gateway = start_gateway(engine, gallery)
    port = gateway.port
    with open_channel(f"127.0.0.1:{port}") as channel:
        gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
            gallery_pb2.EnrollRequest(nik=nik_for(n), face=face_pb2.Face(image=photos(*ENROLLED[n])[0].read_bytes()))
            for n in range(4)))
    people = [0, 1, 2, 3]
    frames = frames_of(people, per_person=4)
    restarted = []

    def restart_midway(source):
        for frame in source:
            if frame.index == 8 and not restarted:  # the gateway goes away while the camera is mid-video
                gateway.stop(grace=0)
                restarted.append(start_gateway(engine, gallery, listen=f"127.0.0.1:{port}"))
            yield frame

    decisions = []
    with open_channel(f"127.0.0.1:{port}") as channel:
        client = CameraClient(engine.detector, channel, "CAM-9", max_backoff_s=1.0, give_up_after_s=60)
        stats = client.run(restart_midway(frames), decisions.append)
    restarted[0].stop(grace=0)
    assert stats.frames == len(frames) and stats.faces == len(frames)
    assert stats.sent < len(frames)  # tracking: not one crop per frame
    per_person = {}
    for record in decisions:
        per_person.setdefault(record.frame // 4, record)
    assert sorted(per_person) == [0, 1, 2, 3], "every person walking past got a decision, across the restart"
    assert [per_person[n].nik for n in range(4)] == [nik_for(p) for p in people]
    assert len({record.track_id for record in decisions}) == 4


def enrol_first(count: int, port: int) -> None:
    with open_channel(f"127.0.0.1:{port}") as channel:
        gallery_pb2_grpc.GalleryStub(channel).EnrollStream(iter(
            gallery_pb2.EnrollRequest(nik=nik_for(n), face=face_pb2.Face(image=photos(*ENROLLED[n])[0].read_bytes()))
            for n in range(count)))


def green_pixels(image: np.ndarray) -> int:
    """Pixels of the MATCH colour, after Motion-JPEG's losses; the frames themselves have none."""
    blue, green, red = (image[..., c].astype(int) for c in range(3))
    return int(np.sum((green > 150) & (red < 90) & (blue < 90)))


def test_the_annotated_view_boxes_each_face_and_names_it_once_decided(engine, tmp_path):
    gateway = start_gateway(engine, tmp_path / "g")
    enrol_first(2, gateway.port)
    frames = frames_of([0, 1], per_person=3)
    decided = {0: threading.Event(), 1: threading.Event()}

    def paced(source):
        """As a live camera: the next frame of a person comes after that person's decision had time to arrive."""
        for frame in source:
            person = frame.index // 3
            if frame.index % 3:
                assert decided[person].wait(30)
            yield frame

    def on_decision(record: DecisionRecord) -> None:
        overlay.decided(record)
        decided[record.frame // 3].set()

    video = tmp_path / "view.avi"
    overlay = Overlay([VideoFile(video)])
    try:
        with open_channel(f"127.0.0.1:{gateway.port}") as channel:
            CameraClient(engine.detector, channel, "CAM-7", on_frame=overlay.frame).run(paced(frames), on_decision)
    finally:
        overlay.close()
        gateway.stop(grace=0)
    capture = cv2.VideoCapture(str(video))
    written = []
    while (read := capture.read())[0]:
        written.append(read[1])
    assert len(written) == len(frames) and written[0].shape == frames[0].image.shape
    assert capture.get(cv2.CAP_PROP_FPS) == 10.0  # the source's pace: a frame every 100 ms
    greens = [green_pixels(image) for image in written]
    assert greens[0] == 0 and greens[3] == 0, "a face is grey until its decision arrives"
    assert all(greens[n] > 200 for n in (1, 2, 4, 5)), greens
    assert green_pixels(np.stack([frame.image for frame in frames])) == 0


def test_an_untracked_face_takes_the_label_of_a_recent_decision_over_its_box():
    image = np.full((240, 320, 3), 40, dtype=np.uint8)
    overlay = Overlay([])
    seen = TrackedFace(face(100), "", True)
    overlay.decided(DecisionRecord("r1", 0, 0.0, 1, "", (100, 100, 200, 200), "NO_MATCH", "", 0.1, 0.4, ""))
    red = overlay.draw(Frame(1, 100.0, image), [seen])
    assert np.sum((red[..., 2] > 200) & (red[..., 1] < 60)) > 200
    later = overlay.draw(Frame(30, 3000.0, image), [seen])  # the decision is too old to stand for this face
    assert np.sum((later[..., 2] > 200) & (later[..., 1] < 60)) == 0
