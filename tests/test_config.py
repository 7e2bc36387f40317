"""Settings layers: defaults < TOML file < FRG_* environment < explicit overrides (command-line flags)."""

from __future__ import annotations

import os

import pytest
from conftest import fr_gateway

from fr_gateway.audit.log import Fsync
from fr_gateway.config import CHOICES, Settings, load_settings
from fr_gateway.search.faiss_index import INDEX_CLASSES
from fr_gateway.search.milvus_index import INDEX_TYPES, METRICS
from fr_gateway.transport import free_port


def test_defaults_without_any_source():
    assert load_settings(environ={}) == Settings()


def test_each_layer_overrides_the_one_below(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('listen = "127.0.0.1:6000"\ntop_k = 3\nidentify_threshold = 0.5\n'
                      'providers = ["CPUExecutionProvider"]\n')
    environ = {"FRG_CONFIG": str(config), "FRG_TOP_K": "9", "FRG_BATCH_WAIT_MS": "0.5"}
    settings = load_settings(overrides={"listen": "127.0.0.1:7000", "gallery": None}, environ=environ)
    assert settings.listen == "127.0.0.1:7000"  # flag beats file
    assert settings.top_k == 9  # environment beats file
    assert settings.identify_threshold == 0.5  # file beats default
    assert settings.batch_wait_ms == 0.5
    assert settings.providers == ("CPUExecutionProvider",)
    assert settings.gallery == Settings().gallery  # an absent flag changes nothing


def test_environment_lists_and_empty_optionals():
    settings = load_settings(environ={"FRG_PROVIDERS": "CUDAExecutionProvider, CPUExecutionProvider",
                                      "FRG_VERIFY_THRESHOLD": ""})
    assert settings.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert settings.verify_threshold is None


def test_unknown_keys_and_bad_values_are_errors(tmp_path):
    config = tmp_path / "typo.toml"
    config.write_text("identfy_threshold = 0.5\n")
    with pytest.raises(ValueError, match="identfy_threshold"):
        load_settings(config, environ={})
    with pytest.raises(ValueError, match="top_k"):
        load_settings(environ={"FRG_TOP_K": "many"})


def test_choices_and_ranges_are_checked_with_the_key_and_where_it_was_set(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text("det_score = 1.5\n")
    with pytest.raises(ValueError, match=rf"setting 'det_score' \(from {config}\): 1.5 is outside 0..1"):
        load_settings(config, environ={})
    with pytest.raises(ValueError, match=r"setting 'workers' \(from FRG_WORKERS\): 0 is outside 1..inf"):
        load_settings(environ={"FRG_WORKERS": "0"})
    with pytest.raises(ValueError, match=r"setting 'index_kind' \(from the command line\): 'ivf' is not one of "
                                         r"auto, flat, pqfs, ivfpq, hnsw"):
        load_settings(overrides={"index_kind": "ivf"}, environ={})
    with pytest.raises(ValueError, match=r"setting 'top_k' \(from FRG_TOP_K\): 200 is above max_top_k 100"):
        load_settings(environ={"FRG_TOP_K": "200"})


def test_the_choices_are_what_the_backends_take():
    assert set(CHOICES["index_kind"]) == {"auto", *INDEX_CLASSES}
    assert set(CHOICES["milvus_index_type"]) == set(INDEX_TYPES) and CHOICES["milvus_metric"] == METRICS
    assert set(CHOICES["audit_fsync"]) == {policy.value for policy in Fsync}


def test_an_invalid_setting_stops_serve_before_it_listens(tmp_path):
    """The key's name and source, exit 2, and nothing made or loaded first."""
    result = fr_gateway("serve", "--insecure", "--gallery", str(tmp_path / "gallery"), "--listen",
                        f"127.0.0.1:{free_port()}", "--metrics-listen", "",
                        env={**os.environ, "FRG_SEARCH_BACKEND": "milvs"}, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().endswith("setting 'search_backend' (from FRG_SEARCH_BACKEND): 'milvs' is not one "
                                          "of faiss, milvus"), result.stderr
    assert "serving" not in result.stderr and "loading" not in result.stderr.lower()
    assert not (tmp_path / "gallery").exists()
