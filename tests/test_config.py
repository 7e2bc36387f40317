"""Settings layers: defaults < TOML file < FRG_* environment < explicit overrides (command-line flags)."""

from __future__ import annotations

import pytest

from fr_gateway.config import Settings, load_settings


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
