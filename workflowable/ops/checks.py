"""`workflowable check`: can this deployment run? Temporal reachable, the namespace there, the
search attributes registered with the right types, the payload key usable, Postgres reachable,
the schema current."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import RPCError

from ..codec import codec_from
from ..connection import connect_temporal, database_url
from ..db.database import MIGRATIONS, create_engine, server_state
from ..db.partitions import Partition, list_partitions, month_start, next_month
from ..errors import WorkflowableError
from ..settings import Settings
from ..workflows.messages import SEARCH_ATTRIBUTES


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def run_checks(settings: Settings) -> list[Check]:
    codec = _codec_check(settings)
    if not codec.ok:  # every connection to Temporal would fail on it
        return [codec, *await _database_checks(settings)]
    return [*await _temporal_checks(settings), codec, *await _database_checks(settings)]


def _codec_check(settings: Settings) -> Check:
    try:
        codec = codec_from(settings)
    except WorkflowableError as exc:
        return Check("payload codec", False, str(exc))
    if codec is None:
        return Check("payload codec", True, "off: token values are plain text in Temporal's history")
    return Check("payload codec", True, f"AES-GCM, key fingerprint {codec.key_id}")


async def _temporal_checks(settings: Settings) -> list[Check]:
    where = f"{settings.temporal_target}{' (TLS)' if settings.temporal_uses_tls else ''}"
    try:
        client = await connect_temporal(settings)
    except WorkflowableError as exc:
        return [Check("Temporal", False, str(exc))]
    checks = [Check("Temporal", True, f"reachable at {where}")]
    namespace = settings.temporal_namespace
    try:
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    except RPCError as exc:
        return [*checks, Check("namespace", False, f"namespace {namespace!r}: {exc.message}")]
    checks.append(Check("namespace", True, f"{namespace!r} exists"))
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    except RPCError as exc:
        return [*checks, Check("search attributes", False, f"cannot list them: {exc.message}")]
    registered = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
    missing = []
    for key in SEARCH_ATTRIBUTES:
        wanted = key.indexed_value_type.name  # INT, KEYWORD
        if registered.get(key.name) != f"INDEXED_VALUE_TYPE_{wanted}":
            missing.append(f"{key.name} ({wanted.capitalize()})")
    if missing:
        command = "temporal operator search-attribute create --name NAME --type TYPE"
        detail = f"missing or of the wrong type in {namespace!r}: {', '.join(missing)}; register each with `{command}`"
        checks.append(Check("search attributes", False, detail))
    else:
        checks.append(Check("search attributes", True, ", ".join(key.name for key in SEARCH_ATTRIBUTES)))
    return checks


def _partitions_check(partitions: list[Partition], now: datetime) -> Check:
    """The attempt log can take the attempts of this month and the next (workers make the months
    ahead; one that cannot, for want of the right to create tables, leaves them missing)."""
    needed = next_month(next_month(month_start(now)))
    last = partitions[-1].end if partitions else None
    if last is not None and last >= needed:
        return Check("attempt-log partitions", True, f"{len(partitions)}, until {last.astimezone(UTC):%Y-%m-%d} (UTC)")
    where = f"end at {last.astimezone(UTC):%Y-%m-%d} (UTC)" if last else "are missing"
    return Check(
        "attempt-log partitions", False, f"{where}: run `workflowable db partitions --ahead 3` as the role that owns the tables (ran `db upgrade`)"
    )


async def _database_checks(settings: Settings) -> list[Check]:
    try:
        url = database_url(settings)
    except WorkflowableError as exc:
        return [Check("Postgres", False, str(exc))]
    shown = sa.engine.make_url(url).render_as_string(hide_password=True)
    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            server = await server_state(conn)
            partitions = await list_partitions(conn) if server.revision == head_revision() else []
    except (OSError, sa.exc.SQLAlchemyError) as exc:
        return [Check("Postgres", False, f"cannot connect to {shown}: {str(exc).splitlines()[0]}")]
    finally:
        await engine.dispose()
    checks = [Check("Postgres", True, f"reachable at {shown} (server {server.version})")]
    head = head_revision()
    if server.revision == head:
        checks.append(Check("schema", True, f"at revision {head}"))
        checks.append(_partitions_check(partitions, server.now))
    else:
        checks.append(Check("schema", False, f"at revision {server.revision or '(none)'}, wants {head}: run `workflowable db upgrade`"))
    return checks
