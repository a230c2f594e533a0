from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, Field

from workflowable import (
    ActivityContext,
    ActivityType,
    Catalog,
    Condition,
    ConditionType,
    InvalidDefinition,
    InvalidEventPayload,
    InvalidParameters,
    InvalidToken,
    UnknownType,
    WorkflowDefinition,
    WorkflowEvent,
)
from workflowable.definitions import encode_token_value


class Placed(WorkflowEvent):
    order_id: int
    amount: float = Field(gt=0)
    note: str = ""


class Params(BaseModel):
    warehouse: str
    retries: int = 1


class Reserve(ActivityType[Params]):
    Parameters = Params


class Ship(ActivityType):
    max_attempts = 5
    timeout = timedelta(seconds=10)


class Limit(BaseModel):
    limit: float


class Above(ConditionType[Limit]):
    Parameters = Limit


def test_an_event_names_every_bad_field():
    with pytest.raises(InvalidEventPayload) as caught:
        Placed(order_id="not a number", amount=-3)
    assert caught.value.fields == ["order_id", "amount"]
    assert "order_id" in str(caught.value) and "amount" in str(caught.value) and "Placed" in str(caught.value)


def test_an_event_refuses_unknown_and_missing_fields():
    with pytest.raises(InvalidEventPayload) as caught:
        Placed(amount=3, colour="red")
    assert set(caught.value.fields) == {"order_id", "colour"}


def test_tokens_keep_strings_verbatim_and_encode_the_rest_as_json():
    event = Placed(order_id=7, amount=12.5, note="a'); DROP TABLE x;-- ü")
    assert event.to_tokens() == {"order_id": "7", "amount": "12.5", "note": "a'); DROP TABLE x;-- ü"}
    assert encode_token_value([1, {"a": None}]) == '[1,{"a":null}]'
    with pytest.raises(InvalidToken):
        encode_token_value(object())


def test_an_activity_context_collects_outputs():
    ctx = ActivityContext(process_id=1, activity_id=2, activity_name="a", attempt=1, tokens={}, parameters=Params(warehouse="w"))
    ctx.set_output("id", 42)
    ctx.set_output("name", "x")
    assert ctx.outputs == {"id": "42", "name": "x"}
    with pytest.raises(InvalidToken):
        ctx.set_output("", "empty key")


def test_types_are_named_after_their_classes_and_catalogued():
    catalog = Catalog.of([Placed, Reserve, Ship, Above])
    assert set(catalog.events) == {"Placed"}
    assert set(catalog.activities) == {"Reserve", "Ship"}
    assert catalog.condition("Above") is Above
    with pytest.raises(UnknownType):
        catalog.activity("Missing")
    with pytest.raises(UnknownType):
        Catalog.of([int])


def test_parameters_are_validated_when_the_definition_is_built():
    flow = WorkflowDefinition("w", event=Placed)
    with pytest.raises(InvalidParameters) as caught:
        flow.activity("reserve", Reserve, {"retries": "many"})
    assert set(caught.value.fields) == {"warehouse", "retries"}
    assert "reserve" in str(caught.value)
    with pytest.raises(InvalidParameters):
        Condition(Above, {"limit": "high"})


def test_a_definition_builds_its_graph():
    flow = WorkflowDefinition("w", event=Placed)
    reserve = flow.activity("reserve", Reserve, {"warehouse": "east"})
    ship = flow.activity("ship", Ship)
    assert ship.max_attempts == 5 and ship.timeout_seconds == 10
    entry = flow.start(reserve)
    big = flow.transition(reserve, ship, when=[Condition(Above, {"limit": 10})])
    small = flow.transition(reserve, ship)
    assert (entry.source, entry.ordinal, entry.name) == (None, 1, "start -> reserve")
    assert [big.ordinal, small.ordinal] == [1, 2]
    assert big.conditions[0].parameters == Limit(limit=10)
    flow.check()


def test_a_definition_refuses_what_cannot_run():
    flow = WorkflowDefinition("w", event=Placed)
    reserve = flow.activity("reserve", Reserve, {"warehouse": "east"})
    with pytest.raises(InvalidDefinition):
        flow.check()  # no entry transition
    with pytest.raises(InvalidDefinition):
        flow.activity("reserve", Ship)  # name taken
    stranger = WorkflowDefinition("other", event=Placed).activity("x", Ship)
    with pytest.raises(InvalidDefinition):
        flow.transition(reserve, stranger)
    flow.start(reserve, ordinal=3)
    with pytest.raises(InvalidDefinition):
        flow.start(reserve, ordinal=3)
    with pytest.raises(InvalidDefinition):
        WorkflowDefinition("w", event=Placed, retry_interval=0)
    with pytest.raises(InvalidDefinition):
        WorkflowDefinition("w", event=Reserve)  # type: ignore[arg-type]
    with pytest.raises(InvalidDefinition):
        flow.activity("bad", Above)  # type: ignore[arg-type]
