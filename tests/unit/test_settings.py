from __future__ import annotations

from pathlib import Path

from workflowable import Settings


def test_settings_come_from_prefixed_variables(monkeypatch):
    monkeypatch.setenv("WORKFLOWABLE_DATABASE_URL", "postgresql://u:secret@db/x")
    monkeypatch.setenv("WORKFLOWABLE_TEMPORAL_ADDRESS", "temporal:7233")
    monkeypatch.setenv("WORKFLOWABLE_TASK_QUEUE", "orders")
    monkeypatch.setenv("WORKFLOWABLE_STATE_DIR", "/tmp/state")
    settings = Settings()
    assert settings.database_url.get_secret_value() == "postgresql://u:secret@db/x"
    assert "secret" not in repr(settings)
    assert (settings.temporal_target, settings.task_queue, settings.state_dir) == ("temporal:7233", "orders", Path("/tmp/state"))


def test_unset_means_the_dev_stack(monkeypatch):
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TASK_QUEUE"):
        monkeypatch.delenv(f"WORKFLOWABLE_{name}", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url is None
    assert settings.temporal_target == "localhost:7233"
    assert settings.task_queue == "workflowable"
