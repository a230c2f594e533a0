"""All settings in one place, read from `WORKFLOWABLE_*` environment variables.

Pass a `Settings` into the client, the worker and the dev stack rather than reading the
environment deep inside modules, so that tests and applications can build their own.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"


class Settings(BaseSettings):
    """Where the mirror and Temporal live, and the defaults processes run with."""

    model_config = SettingsConfigDict(env_prefix="WORKFLOWABLE_", env_file=".env", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None,
        description="Postgres URL of the mirror; unset: an embedded Postgres under state_dir.",
    )
    temporal_address: str | None = Field(
        default=None,
        description=f"host:port of Temporal; unset: the dev stack's server on {DEFAULT_TEMPORAL_ADDRESS}.",
    )
    temporal_namespace: str = "default"
    task_queue: str = Field(default="workflowable", description="Queue of events that name none.")
    state_dir: Path = Field(
        default=Path(".workflowable"),
        description="Folder for the dev stack: embedded Postgres data, Temporal's database file.",
    )
    lock_lease: float = Field(
        default=30.0,
        gt=0,
        description="Seconds a process that stopped renewing (terminated, no worker) keeps its lock key.",
    )
    app: str | None = Field(
        default=None,
        description="'module:attribute' naming the list of event, activity and condition types.",
    )

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or DEFAULT_TEMPORAL_ADDRESS
