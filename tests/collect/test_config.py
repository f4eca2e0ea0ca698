"""Configuration the way `cs` users have it: env, cloudstack.ini, regions, --endpoint."""

import pytest

from csaudit.collect.config import load_api_config, redact_url
from csaudit.model.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in ("CLOUDSTACK_ENDPOINT", "CLOUDSTACK_KEY", "CLOUDSTACK_SECRET", "CLOUDSTACK_REGION", "CLOUDSTACK_CONFIG", "CLOUDSTACK_OVERRIDES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.chdir(tmp_path)


def test_environment_wins(monkeypatch, tmp_path):
    (tmp_path / "cloudstack.ini").write_text("[cloudstack]\nendpoint = http://127.0.0.2:8080/client/api\nkey = k\nsecret = s\n")
    monkeypatch.setenv("CLOUDSTACK_ENDPOINT", "http://127.0.0.1:8080/client/api")
    monkeypatch.setenv("CLOUDSTACK_KEY", "envkey")
    monkeypatch.setenv("CLOUDSTACK_SECRET", "envsecret")
    config = load_api_config()
    assert (config.endpoint, config.key, config.api_mode) == ("http://127.0.0.1:8080/client/api", "envkey", "signed")
    assert "envsecret" not in repr(config)


def test_ini_in_working_directory_and_region(tmp_path):
    (tmp_path / "cloudstack.ini").write_text(
        "[cloudstack]\nendpoint = http://127.0.0.1:8080/client/api\nkey = k\nsecret = s\n\n"
        "[lab]\nendpoint = http://127.0.0.3:8096/client/api\n")
    assert load_api_config().api_mode == "signed"
    lab = load_api_config(region="lab")
    assert (lab.endpoint, lab.api_mode, lab.region) == ("http://127.0.0.3:8096/client/api", "integration", "lab")
    with pytest.raises(ConfigError, match=r"region \[nowhere\]"):
        load_api_config(region="nowhere")


def test_cloudstack_config_variable(monkeypatch, tmp_path):
    path = tmp_path / "elsewhere.ini"
    path.write_text("[cloudstack]\nendpoint = http://127.0.0.4:8080/client/api\nkey = k\nsecret = s\n")
    monkeypatch.setenv("CLOUDSTACK_CONFIG", str(path))
    assert load_api_config().endpoint == "http://127.0.0.4:8080/client/api"


def test_endpoint_option_overrides_and_works_without_config():
    config = load_api_config(endpoint="http://127.0.0.5:8096/client/api")
    assert config.api_mode == "integration" and config.key is None


def test_nothing_configured_says_where_it_looked():
    with pytest.raises(ConfigError) as caught:
        load_api_config()
    for place in ("CLOUDSTACK_ENDPOINT", "~/.cloudstack.ini", "./cloudstack.ini", "$CLOUDSTACK_CONFIG"):
        assert place in caught.value.message


def test_key_without_secret_is_refused(monkeypatch):
    monkeypatch.setenv("CLOUDSTACK_ENDPOINT", "http://127.0.0.1:8080/client/api")
    monkeypatch.setenv("CLOUDSTACK_KEY", "k")
    with pytest.raises(ConfigError, match="needs its secret"):
        load_api_config()


def test_bad_endpoint_and_timeout(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="not an http"):
        load_api_config(endpoint="ftp://127.0.0.1/")
    (tmp_path / "cloudstack.ini").write_text("[cloudstack]\nendpoint = http://127.0.0.1:8080/client/api\ntimeout = soon\n")
    with pytest.raises(ConfigError, match="whole number"):
        load_api_config()


def test_redact_url():
    assert redact_url("https://user:pw@127.0.0.1:8443/client/api?x=1") == "https://127.0.0.1:8443/client/api"


def test_secret_readable_by_others_is_warned(tmp_path, caplog):
    import logging

    ini = tmp_path / "cloudstack.ini"
    ini.write_text("[cloudstack]\nendpoint = http://127.0.0.1:8080/client/api\nkey = k\nsecret = s3cr3t\n")
    ini.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="csaudit"):
        load_api_config()
    assert "holds the API secret and is readable by others (mode 644)" in caplog.text
    assert "s3cr3t" not in caplog.text
    caplog.clear()
    ini.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="csaudit"):
        load_api_config()
    assert "readable by others" not in caplog.text
