"""Generated input against the public API: payloads, ids and request sequences.

Whatever is generated, a call either succeeds or raises a `WorkflowableError`; and whenever it
raises, every table and every sequence is as it was before the call. The calls run against a
database of their own (so that a snapshot is small) and a task queue no worker serves: processes
that are dispatched stay Dispatched, their requests applied through the mirror.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ConfigDict, SecretStr

from tests.conftest import database_of_its_own, snapshot, unique
from workflowable import (
    ActivityType,
    DatabaseError,
    InternalError,
    Settings,
    TemporalError,
    Workflowable,
    WorkflowableError,
    WorkflowDefinition,
    WorkflowEvent,
)


class Fuzzed(WorkflowEvent):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    text: str = ""
    number: int = 0
    anything: Any = None
    mapping: dict[str, Any] = {}  # noqa: RUF012 - pydantic copies defaults


class Step(ActivityType):
    pass


@pytest.fixture(scope="module")
async def fuzz_client(database_url: str, settings: Settings) -> AsyncIterator[Workflowable]:
    """A client on a database of its own, with one Active workflow of `Fuzzed`."""
    with database_of_its_own(database_url, "fuzz", far_ids=True) as own:
        queue = f"fuzz-{uuid.uuid4().hex[:8]}"  # no worker: dispatched processes wait there
        async with await Workflowable.connect(settings.model_copy(update={"database_url": SecretStr(own), "task_queue": queue})) as client:
            flow = WorkflowDefinition(unique("fuzzed"), event=Fuzzed)
            flow.start(flow.activity("step", Step))
            await client.save_workflow(flow, activate=True)
            yield client


async def typed_and_unchanged(client: Workflowable, call: Callable[[], Awaitable[Any]]) -> Any:
    """Run `call`: its result, or None if it raised a Workflowable error that names bad input,
    in which case the database must not have changed. Any other exception fails the test, and
    so do the boundary's catch-alls: with both servers up, an `InternalError` (an exception
    Workflowable did not expect) or a database or Temporal error (a statement or request that
    input checked beforehand would not have sent) is a gap in the checks."""
    before = await snapshot(client.engine)
    try:
        return await call()
    except (InternalError, DatabaseError, TemporalError) as exc:
        raise AssertionError(f"an input check is missing: {exc!r}") from exc
    except WorkflowableError:
        assert await snapshot(client.engine) == before, "a call that raised changed the database"
        return None


# Any Unicode, lone surrogates included (Hypothesis leaves them out of text by default).
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
LEAVES = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT | st.binary(max_size=8)
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3), max_leaves=12)


@st.composite
def awkward(draw: st.DrawFn) -> Any:
    """A value serializers choke on: nested hundreds deep, or containing itself."""
    if draw(st.booleans()):
        value: Any = draw(LEAVES)
        for _ in range(draw(st.integers(90, 320))):
            value = {"down": value} if draw(st.booleans()) else [value]
        return value
    loop: dict[str, Any] = {"key": draw(LEAVES)}
    loop["again"] = [loop] if draw(st.booleans()) else loop
    return loop


PAYLOADS = st.fixed_dictionaries(
    {},
    optional={
        "text": ANY_TEXT | VALUES,
        "number": st.integers(min_value=-(2**70), max_value=2**70) | VALUES,
        "anything": VALUES | awkward(),
        "mapping": st.dictionaries(ANY_TEXT, VALUES | awkward(), max_size=3) | VALUES,
    },
)
RUN_AT = st.sampled_from([None, "past", "future", "naive", "text"])
BOGUS_IDS = st.integers() | st.integers(min_value=2**63 - 2) | ANY_TEXT | st.binary(max_size=4) | st.floats() | st.none() | st.booleans()
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def run_at_of(choice: str | None) -> Any:
    now = datetime.now(UTC)
    return {None: None, "past": now - timedelta(minutes=1), "future": now + timedelta(days=1), "naive": datetime.now(), "text": "tomorrow"}[choice]


@FUZZ
@given(payload=PAYLOADS, constructed=st.booleans(), dispatch=st.booleans(), run_at=RUN_AT)
async def test_generated_payloads_get_a_process_or_a_typed_error_and_no_change(fuzz_client, payload, constructed, dispatch, run_at):
    """Built through the constructor (validated) or `model_construct` (not: the trigger validates again)."""

    async def trigger() -> Any:
        event = Fuzzed(**payload) if constructed else Fuzzed.model_construct(**payload)
        return await fuzz_client.trigger_event(event, dispatch=dispatch, run_at=run_at_of(run_at))

    created = await typed_and_unchanged(fuzz_client, trigger)
    for process in created or []:
        stored = (await fuzz_client.get_process(process.id)).token_values
        for field in ("anything", "mapping"):  # no coercion: every text in them is stored as given
            if field in payload:
                # A text is stored verbatim, anything else as JSON (definitions.encode_token_value).
                found = stored[field] if isinstance(payload[field], str) else json.loads(stored[field])
                assert texts(found) == texts(payload[field]), f"{field} was rewritten"
        await fuzz_client.cancel_process(process.id)


def texts(value: Any) -> list[str]:
    """Every text in a value, keys included, in order (bytes as the UTF-8 text they are stored as)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8")]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [*texts(key), *texts(item)]]
    if isinstance(value, list):
        return [text for item in value for text in texts(item)]
    return []


REQUESTS = st.sampled_from(["pause", "resume", "cancel", "wake", "retry", "dispatch", "get", "wait", "live"])


@FUZZ
@given(steps=st.lists(st.tuples(REQUESTS, st.integers(0, 2) | BOGUS_IDS), min_size=1, max_size=6), dispatch=st.booleans())
async def test_generated_request_sequences_give_typed_errors_that_change_nothing(fuzz_client, steps, dispatch):
    """Requests at two processes of one trigger (by index 0 and 1; 2 is a process that was
    never made) and at bogus ids, in any order."""
    made = await fuzz_client.trigger_event(Fuzzed(text="steered"), dispatch=dispatch)
    ids = [made[0].id, made[0].id + 10**9]
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "pause": lambda i: fuzz_client.pause_process(i, timeout=2),
        "resume": lambda i: fuzz_client.resume_process(i, timeout=2),
        "cancel": lambda i: fuzz_client.cancel_process(i, timeout=2),
        "wake": fuzz_client.wake_process,
        "retry": fuzz_client.retry_process,
        "dispatch": fuzz_client.dispatch_process,
        "get": fuzz_client.get_process,
        "wait": lambda i: fuzz_client.wait_for_process(i, timeout=0.2),
        "live": lambda i: fuzz_client.get_live_state(i, timeout=1),
    }
    for request, target in steps:
        process_id = ids[target] if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(ids) else target
        await typed_and_unchanged(fuzz_client, lambda: calls[request](process_id))  # noqa: B023 - awaited at once
    if not (await fuzz_client.get_process(ids[0])).status.is_terminal:
        await fuzz_client.cancel_process(ids[0])
