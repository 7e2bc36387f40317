"""The template store: sealed at rest, bound to NIK and model, migrated from v1, keys rotate, keys guarded; a
store, key and folder that do not belong together are refused, a damaged row is isolated, files are private."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from conftest import nik_for

from fr_gateway.faces.models import locate_pack
from fr_gateway.gallery.store import STORE_FILE, GalleryRefused, TemplateDamaged, TemplateStore
from fr_gateway.search.snapshot import load_snapshot, save_snapshot
from fr_gateway.security.keys import KEY_ENV, KeyRing, KeyRingError

MODEL = "f" * 64


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(512).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def keys(tmp_path):
    return KeyRing.load(tmp_path / "keys" / "g.json")


def test_key_file_is_created_private_and_reloads(tmp_path):
    path = tmp_path / "keys" / "g.json"
    ring = KeyRing.load(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    assert KeyRing.load(path).active == ring.active


def test_exposed_malformed_and_missing_key_files_are_refused(tmp_path):
    path = tmp_path / "g.json"
    KeyRing.load(path)
    os.chmod(path, 0o644)
    with pytest.raises(KeyRingError, match="chmod 600"):
        KeyRing.load(path)
    os.chmod(path, 0o600)
    content = json.loads(path.read_text())
    content["keys"][content["active"]] = "c2hvcnQ="
    path.write_text(json.dumps(content))
    with pytest.raises(KeyRingError, match="32 bytes"):
        KeyRing.load(path)
    with pytest.raises(KeyRingError, match="does not exist"):
        KeyRing.load(tmp_path / "absent.json", create=False)


def test_templates_and_attributes_are_sealed_at_rest(tmp_path, keys):
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    template = unit(1)
    store.upsert(nik_for(1), template, {"name": "Siti Rahayu"}, source_sha256="ab" * 32)
    store.close()
    raw = (tmp_path / "g" / STORE_FILE).read_bytes() + b"".join(
        p.read_bytes() for p in (tmp_path / "g").glob(STORE_FILE + "-*"))
    assert template.tobytes()[:64] not in raw
    assert b"Siti Rahayu" not in raw
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    assert np.array_equal(store.get(nik_for(1)), template)
    assert store.attributes(nik_for(1)) == {"name": "Siti Rahayu"}
    assert store.source_of(nik_for(1)) == "ab" * 32


def test_a_sealed_record_moved_to_another_nik_does_not_open(tmp_path, keys):
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    store.upsert(nik_for(1), unit(1), {})
    store.upsert(nik_for(2), unit(2), {})
    store.close()
    with sqlite3.connect(tmp_path / "g" / STORE_FILE) as db:
        db.execute("UPDATE templates SET sealed = (SELECT sealed FROM templates WHERE nik = ?) WHERE nik = ?",
                   (nik_for(1), nik_for(2)))
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    with pytest.raises(TemplateDamaged, match=f"NIK {nik_for(2)} is damaged"):
        store.get(nik_for(2))
    assert store.get_many([nik_for(1), nik_for(2)]).keys() == {nik_for(1)}  # isolated: searches go on
    assert [niks for niks, _ in store.iter_templates()] == [[nik_for(1)]] and store.damaged == {nik_for(2)}


def test_wrong_key_cannot_read(tmp_path, keys):
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    store.upsert(nik_for(1), unit(1), {})
    store.close()
    other = TemplateStore(tmp_path / "g", MODEL, "m.onnx", KeyRing.load(tmp_path / "other.json"))
    with pytest.raises(TemplateDamaged, match="not in the key ring"):
        other.get(nik_for(1))
    other.close()
    with pytest.raises(GalleryRefused, match=r"which the key ring .* does not hold: is it this gallery's key file"):
        TemplateStore.open(tmp_path / "g", tmp_path / "other.json", MODEL, "m.onnx")


def test_environment_key_seals_and_opens(tmp_path):
    environ = {KEY_ENV: "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="}
    ring = KeyRing.load(tmp_path / "unused.json", environ=environ)
    assert not (tmp_path / "unused.json").exists()
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", ring)
    store.upsert(nik_for(3), unit(3), {})
    assert np.array_equal(store.get(nik_for(3)), unit(3))


def test_version_grows_with_every_change_and_replacement_keeps_history(tmp_path, keys):
    store = TemplateStore(tmp_path / "g", MODEL, "m.onnx", keys)
    assert store.version == 0
    assert store.upsert(nik_for(1), unit(1), {}) is False
    assert store.upsert(nik_for(1), unit(2), {}) is True
    assert store.delete(nik_for(1)) and not store.delete(nik_for(1))
    assert store.version == 3
    with sqlite3.connect(tmp_path / "g" / STORE_FILE) as db:
        assert db.execute("SELECT COUNT(*) FROM templates").fetchone()[0] == 0


def test_v1_gallery_is_migrated_without_loss(tmp_path, keys):
    folder = tmp_path / "old"
    folder.mkdir()
    with sqlite3.connect(folder / STORE_FILE) as db:  # the schema of fr-gateway 0.1's first release
        db.executescript("""
            CREATE TABLE gallery_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE templates (nik TEXT PRIMARY KEY, template BLOB NOT NULL, model_sha256 TEXT NOT NULL,
                enrolled_at TEXT NOT NULL, previous_enrolled_at TEXT, attributes TEXT NOT NULL DEFAULT '{}');
        """)
        db.executemany("INSERT INTO gallery_meta VALUES (?, ?)", [
            ("schema_version", "1"), ("model_sha256", MODEL), ("model_name", "m.onnx"), ("created_at", "2026")])
        db.executemany("INSERT INTO templates VALUES (?, ?, ?, ?, ?, ?)", [
            (nik_for(n), unit(n).tobytes(), MODEL, "2026-01-01", None, json.dumps({"n": str(n)})) for n in range(5)])
    os.chmod(folder / STORE_FILE, 0o600)
    store = TemplateStore(folder, MODEL, "m.onnx", keys)
    assert len(store) == 5
    assert all(np.array_equal(store.get(nik_for(n)), unit(n)) for n in range(5))
    assert store.attributes(nik_for(4)) == {"n": "4"}
    with sqlite3.connect(folder / STORE_FILE) as db:
        assert db.execute("SELECT value FROM gallery_meta WHERE key = 'schema_version'").fetchone() == ("2",)
        assert "template" not in [c[1] for c in db.execute("PRAGMA table_info(templates)")]


def test_keys_rotate_reseals_and_retires(tmp_path):
    gallery = tmp_path / "gallery"
    key_file = tmp_path / "keys" / "gallery.json"
    pack = locate_pack()
    ring = KeyRing.load(key_file)
    store = TemplateStore(gallery, pack.fingerprint, pack.name, ring)
    for n in range(20):
        store.upsert(nik_for(n), unit(n), {})
    store.close()
    old = ring.active

    result = subprocess.run([sys.executable, "-m", "fr_gateway.cli", "keys", "rotate", "--gallery", str(gallery),
                             "--retire"], capture_output=True, text=True,
                            env={**os.environ, "FRG_KEY_FILE": str(key_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"new active key {KeyRing.load(key_file).active}; resealed 20 records; retired {old}\n"
    rotated = KeyRing.load(key_file)
    assert rotated.active != old and rotated.ids == [rotated.active]
    store = TemplateStore(gallery, pack.fingerprint, pack.name, rotated)
    assert store.key_ids_in_use() == {rotated.active}
    assert np.array_equal(store.get(nik_for(7)), unit(7))


def test_a_new_gallery_is_private_and_an_exposed_store_is_refused(tmp_path):
    store = TemplateStore.open(tmp_path / "g", tmp_path / "keys" / "g.json", MODEL, "m.onnx")
    store.upsert(nik_for(1), unit(1), {})
    store.close()
    assert oct((tmp_path / "g").stat().st_mode & 0o777) == "0o700"
    for path in (tmp_path / "g").iterdir():  # the database, and SQLite's WAL and shared memory beside it
        assert oct(path.stat().st_mode & 0o777) == "0o600", path.name
    os.chmod(tmp_path / "g" / STORE_FILE, 0o644)
    with pytest.raises(GalleryRefused, match=r"template store .* is readable by others .*chmod 600"):
        TemplateStore.open(tmp_path / "g", tmp_path / "keys" / "g.json", MODEL, "m.onnx")


def test_a_lost_key_is_refused_and_never_replaced(tmp_path):
    key_file = tmp_path / "keys" / "g.json"
    TemplateStore.open(tmp_path / "g", key_file, MODEL, "m.onnx").close()
    key_file.unlink()
    with pytest.raises(GalleryRefused, match=r"does not exist.*restore the key file from its backup"):
        TemplateStore.open(tmp_path / "g", key_file, MODEL, "m.onnx")
    assert not key_file.exists()


def test_a_folder_that_lost_its_store_is_refused_and_left_as_it_is(tmp_path):
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "index.faiss.sealed").write_bytes(b"the only other copy")
    with pytest.raises(GalleryRefused, match=r"holds index\.faiss\.sealed but no templates\.sqlite3"):
        TemplateStore.open(tmp_path / "g", tmp_path / "keys" / "g.json", MODEL, "m.onnx")
    assert sorted(p.name for p in (tmp_path / "g").iterdir()) == ["index.faiss.sealed"]
    assert not (tmp_path / "keys").exists()


def test_a_saved_index_is_private_and_one_damaged_or_exposed_is_rebuilt_not_trusted(tmp_path, keys):
    header = {"store_version": 3, "count": 1}
    path = save_snapshot(b"index bytes", tmp_path, header, keys)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_snapshot(tmp_path, header, keys) == b"index bytes"
    content = path.read_bytes()
    key_line = content.index(b"\n") + 1
    path.write_bytes(content[:key_line] + b"\xff" + content[key_line + 1:])  # a flipped byte in the key id
    assert load_snapshot(tmp_path, header, keys) is None
    save_snapshot(b"index bytes", tmp_path, header, keys)
    os.chmod(path, 0o644)
    assert load_snapshot(tmp_path, header, keys) is None
