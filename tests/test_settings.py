"""Settings are read once and checked: a setting that must be a URL is one, and an app setting
that is still a literal Key Vault reference (the platform could not resolve it) is named as such."""

from __future__ import annotations

import pytest

from core.settings import Settings, SettingsError

BASE = {"AZURE_TENANT_ID": "t", "KEY_VAULT_URL": "https://kv.vault.azure.net/"}


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("ALERT_WEBHOOK_URL", "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/hook/)", "unresolved"),
        ("ALERT_WEBHOOK_URL", "http://hooks.example.com/x", "https URL"),
        ("ALERT_WEBHOOK_URL", "http://localhost.example.com/x", "https URL"),
        ("ALERT_WEBHOOK_URL", "hooks.example.com", "https URL"),
        ("KEY_VAULT_URL", "kv.vault.azure.net", "https URL"),
        ("GRAPH_BASE_URL", "https://", "https URL"),
        ("AZURE_AUTHORITY_HOST", "login.microsoftonline.com", "https URL"),
        ("NYLAS_V3_API_EU", "https://api.eu.nylas.com /x", "https URL"),
        ("NYLAS_V2_API_US", "ftp://beta.us.nylas.com", "https URL"),
    ],
)
def test_a_setting_that_must_be_a_url_is_refused_naming_it(name, value, words):
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({**BASE, name: value})
    assert name in str(refused.value) and words in str(refused.value)


def test_an_empty_alert_webhook_means_log_only():
    assert Settings.from_env(BASE).alert_webhook_url == ""


def test_the_nylas_apis_and_the_webhook_are_read_as_given():
    settings = Settings.from_env(
        {**BASE, "ALERT_WEBHOOK_URL": "https://hooks.example.com/x?y=1", "NYLAS_V3_API_EU": "https://eu.example/"}
    )
    assert settings.alert_webhook_url == "https://hooks.example.com/x?y=1"
    assert settings.nylas_v3_api["eu"] == "https://eu.example"


def test_plain_http_is_allowed_on_loopback_only_for_local_runs():
    assert Settings.from_env({**BASE, "ALERT_WEBHOOK_URL": "http://127.0.0.1:8080/hook"}).alert_webhook_url
