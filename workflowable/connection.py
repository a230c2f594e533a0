"""Finding the servers as the settings say: the mirror's URL (or the dev stack's Postgres), and
Temporal's address, namespace, TLS, API key and payload codec.

The one place that does it, so the client, the worker, the CLI and `workflowable check` all
connect the same way. Secrets are read from the settings, never printed.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client, TLSConfig

from . import tracing
from .codec import data_converter
from .errors import DatabaseNotConfigured, InvalidArgument, TemporalUnavailable
from .metrics import prometheus_runtime
from .settings import Settings


def tls_config(settings: Settings) -> TLSConfig | bool:
    if not settings.temporal_uses_tls:
        return False

    def read(path: object, what: str) -> bytes | None:
        if path is None:
            return None
        try:
            return Path(str(path)).read_bytes()
        except OSError as exc:
            raise InvalidArgument(f"cannot read the {what} file {path}: {exc.strerror}") from None

    return TLSConfig(
        server_root_ca_cert=read(settings.temporal_tls_ca, "TLS CA"),
        client_cert=read(settings.temporal_tls_cert, "TLS client certificate"),
        client_private_key=read(settings.temporal_tls_key, "TLS client key"),
        domain=settings.temporal_tls_server_name,
    )


def database_url(settings: Settings, *, start: bool = True) -> str:
    """The configured URL of the mirror or, when none is set, the dev stack's embedded Postgres
    under the state folder: started if it is not running, or with `start=False` (a command that
    only reads) attached to only if it runs."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    from .ops.devstack import EmbeddedPostgres  # only the dev stack needs it

    embedded = EmbeddedPostgres(settings.state_dir)
    if not start and not embedded.running:
        raise DatabaseNotConfigured(
            f"no mirror to read: WORKFLOWABLE_DATABASE_URL is unset and no dev stack runs in {settings.state_dir} "
            "(start one with `workflowable dev`)"
        )
    return embedded.start()


async def connect_temporal(settings: Settings, *, metrics: bool = False) -> Client:
    """A client of Temporal as `settings` say. `metrics`: its runtime serves Prometheus metrics on
    `settings.metrics_address`, if set (a worker's client: what it records is exported there)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    runtime = prometheus_runtime(settings.metrics_address) if metrics and settings.metrics_address else None
    try:
        return await Client.connect(
            settings.temporal_target,
            namespace=settings.temporal_namespace,
            tls=tls_config(settings),
            api_key=api_key,
            data_converter=data_converter(settings),
            runtime=runtime,
            interceptors=tracing.interceptors(settings.tracing),
        )
    except RuntimeError as exc:  # the SDK's connection errors
        raise TemporalUnavailable(f"cannot connect to Temporal at {settings.temporal_target}: {exc}") from None
