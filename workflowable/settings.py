"""All settings in one place, read from `WORKFLOWABLE_*` environment variables.

Pass a `Settings` into the client, the worker and the dev stack rather than reading the
environment deep inside modules, so that tests and applications can build their own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .workflows.messages import DEFAULT_LOCK_LEASE_SECONDS

DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
#: Temporal refuses payloads over 2 MB and every activity carries all of a process's tokens:
#: 256 KiB a token keeps a process with a few large tokens well inside that.
DEFAULT_MAX_TOKEN_BYTES = 256 * 1024
#: All of a process's tokens together, keys included: a workflow's start, each step's input and
#: each continue-as-new carry them, and Temporal refuses a payload over 2 MB (its default
#: blob limit); 1 MiB leaves room for the rest of the payload (the graph, the parameters).
DEFAULT_MAX_PROCESS_TOKENS_BYTES = 1024 * 1024
#: A waiting process re-checks its transitions this many times in one Temporal run, then
#: continues as new (about 10 history events a check, far under Temporal's 10,240 warning).
DEFAULT_CHECKS_PER_RUN = 500


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
    temporal_tls: bool = Field(default=False, description="Connect to Temporal over TLS (implied by a client certificate or an API key).")
    temporal_tls_ca: Path | None = Field(default=None, description="PEM file of the CA that signed the server's certificate.")
    temporal_tls_cert: Path | None = Field(default=None, description="PEM file of the client certificate (mTLS).")
    temporal_tls_key: Path | None = Field(default=None, description="PEM file of the client certificate's private key.")
    temporal_tls_server_name: str | None = Field(default=None, description="Server name to verify, if not the address's host.")
    temporal_api_key: SecretStr | None = Field(default=None, description="API key, as for Temporal Cloud.")
    task_queue: str = Field(default="workflowable", description="Queue of events that name none.")
    state_dir: Path = Field(
        default=Path(".workflowable"),
        description="Folder for the dev stack: embedded Postgres data, Temporal's database file.",
    )
    lock_lease: float = Field(
        default=DEFAULT_LOCK_LEASE_SECONDS,
        gt=0,
        description="Seconds a process that stopped renewing (terminated, no worker) keeps its lock key.",
    )
    checks_per_run: int = Field(
        default=DEFAULT_CHECKS_PER_RUN,
        gt=0,
        description="Re-checks of a waiting process's transitions in one Temporal run before it continues as new.",
    )
    max_token_bytes: int = Field(
        default=DEFAULT_MAX_TOKEN_BYTES,
        gt=0,
        description="Largest token value in bytes (UTF-8), checked before a process starts or an output is written.",
    )
    max_process_tokens_bytes: int = Field(
        default=DEFAULT_MAX_PROCESS_TOKENS_BYTES,
        gt=0,
        description="Largest total of a process's tokens (keys and values, UTF-8), checked before a process starts or an output is written.",
    )
    payload_key: SecretStr | None = Field(
        default=None,
        description="Base64 of a 16, 24 or 32 byte AES key: encrypts every payload in Temporal's history (AES-GCM).",
    )
    app: str | None = Field(
        default=None,
        description="'module:attribute' naming the list of event, activity and condition types.",
    )
    temporal_ui_url: str = Field(
        default="http://localhost:8233",
        description="The Temporal web UI, for links to a process's page (the report's); default: the dev stack's.",
    )
    metrics_address: str | None = Field(
        default=None,
        description="host:port where `workflowable worker` serves Prometheus metrics (/metrics): the Temporal SDK's and Workflowable's; unset: none.",
    )
    tracing: bool = Field(
        default=False,
        description="OpenTelemetry spans of every trigger, workflow and activity (needs the 'tracing' extra and a tracer provider).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Level of the worker's and the command's log.")
    log_format: Literal["text", "json"] = Field(default="text", description="text: a line per record; json: an object per line, for log shippers.")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_capitals(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _certificate_and_key_together(self) -> Settings:
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError("WORKFLOWABLE_TEMPORAL_TLS_CERT and WORKFLOWABLE_TEMPORAL_TLS_KEY go together")
        return self

    @property
    def temporal_target(self) -> str:
        return self.temporal_address or DEFAULT_TEMPORAL_ADDRESS

    @property
    def temporal_uses_tls(self) -> bool:
        return self.temporal_tls or self.temporal_tls_cert is not None or self.temporal_api_key is not None
