"""Our messages' payloads: readable in the web UI (declared order, defaults left out), and
decoded alike by our converter and Temporal's default one, either way round."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.converter import DefaultPayloadConverter

from workflowable.workflows import payloads
from workflowable.workflows.messages import (
    ActivityInput,
    ActivityOutput,
    ActivityStep,
    ConditionStep,
    ProcessInput,
    ProcessPlan,
    ProcessResult,
    ProcessState,
    StatusChange,
    TransitionStep,
)
from workflowable.workflows.payloads import MessagePayloadConverter

DEFAULT = DefaultPayloadConverter()
OURS = MessagePayloadConverter()

TRANSITIONS = [
    TransitionStep(7, None, 1, 0),
    TransitionStep(8, 1, 2, 0, [ConditionStep("gate", {"open": True, "limit": 3.5}), ConditionStep("always", {})]),
    TransitionStep(9, 2, 3, 1),
]
PLAN = ProcessPlan(
    process_id=41,
    workflow_name="orders",
    event_name="OrderPlaced",
    status=3,
    retry_interval_seconds=60,  # an int where a float is declared: JSON writes it without ".0"
    retry_backoff_seconds=1.5,
    activities=[ActivityStep(1, "first", "noop", {"x": [1, 2], "nested": {"a": None}}, 3, 300.0)],
    transitions=TRANSITIONS,
    position=None,
    tokens={"order": "17", "name": "Zoë"},
    steps_taken=0,
    lock_key="customer-5",
)
MESSAGES = [
    ProcessInput(41),
    ProcessInput(41, PLAN),
    ProcessInput(41, PLAN, attributes_set=True),
    ActivityInput(41, 1, "first", 1, 2, {"p": "v"}, {"order": "17"}, TRANSITIONS[1:2], completes=True, begins_run=True),
    ActivityOutput({"out": "1"}, wait_until=datetime(2026, 11, 27, 4, 5, 6, 789, tzinfo=UTC), checked=True, chosen=8),
    ActivityOutput({}, not_begun=5),
    StatusChange(41, 2, next_run_at=datetime(2026, 1, 2, tzinfo=UTC), error=None, paused_from=4),
    ProcessState(41, 4, "Running", 2, {"k": "v"}, None, False, None),
    ProcessResult(41, "orders", "Completed", {"order": "17", "paid": "yes"}),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_either_converter_reads_the_others_payloads(message):
    ours, theirs = OURS.to_payloads([message]), DEFAULT.to_payloads([message])
    kind = type(message)
    assert OURS.from_payloads(theirs, [kind]) == [message] == DEFAULT.from_payloads(ours, [kind])
    decoded = OURS.from_payloads(theirs, [kind])[0]
    assert type(decoded) is kind


def test_a_process_input_leads_with_the_process_and_ends_with_its_graph():
    written = json.loads(OURS.to_payloads([ProcessInput(41, PLAN, attributes_set=True)])[0].data)
    assert list(written) == ["process_id", "plan", "attributes_set"]  # carried: None, left out
    plan = list(written["plan"])
    assert plan[:4] == ["process_id", "workflow_name", "event_name", "tokens"]
    assert plan[-2:] == ["activities", "transitions"]
    assert "arrived_at" not in plan and "listens" not in plan  # at their defaults, which say nothing
    assert written["plan"]["tokens"] == {"order": "17", "name": "Zoë"}


def test_an_attempts_result_holds_only_what_it_says():
    assert OURS.to_payloads([ActivityOutput({"approved": "yes"})])[0].data == b'{"outputs":{"approved":"yes"}}'
    checked = ActivityOutput({}, checked=True, chosen=None)
    assert OURS.to_payloads([checked])[0].data == b'{"outputs":{},"checked":true}'
    assert OURS.from_payloads(OURS.to_payloads([checked]), [ActivityOutput]) == [checked]


#: Every field left out of a payload at its default: a recorded payload without it decodes to
#: this value, so changing one changes what running processes and recorded histories mean.
LEFT_OUT = {
    "TransitionStep": {"conditions": [], "after_seconds": None},
    "ProcessPlan": {"lock_key": None, "arrived_at": None, "listens": [], "activities": [], "transitions": []},
    "Carried": {"wait_until": None, "arrived_at": None},
    "ProcessInput": {"plan": None, "attributes_set": False, "carried": None},
    "ChooseInput": {"with_deliveries": False, "cause": ""},
    "ChooseOutput": {"deliveries": []},
    "ActivityInput": {"then_check": [], "completes": False, "begins_run": False, "workflow_name": ""},
    "ActivityOutput": {"wait_until": None, "checked": False, "chosen": None, "completed": False, "not_begun": None},
    "StatusWrite": {"next_run_at": None, "error": None, "paused_from": None},
    "StatusChange": {"next_run_at": None, "error": None, "paused_from": None},
}


def test_only_defaults_that_say_nothing_are_left_out_and_they_do_not_change():
    left_out = {}
    for cls, fields in payloads._FIELDS.items():
        found = {name: default for name, default in fields if default is not payloads._ALWAYS}
        if found:
            left_out[cls.__name__] = found
    assert left_out == LEFT_OUT
    plan = json.loads(OURS.to_payloads([PLAN])[0].data)
    assert plan["lock_lease_seconds"] == PLAN.lock_lease_seconds and plan["checks_per_run"] == PLAN.checks_per_run  # figures: always written


def test_nested_messages_are_built_as_their_dataclasses_and_floats_stay_floats():
    plan = OURS.from_payloads(DEFAULT.to_payloads([ProcessInput(41, PLAN)]), [ProcessInput])[0].plan
    assert isinstance(plan, ProcessPlan)
    assert isinstance(plan.activities[0], ActivityStep) and isinstance(plan.transitions[1].conditions[0], ConditionStep)
    assert type(plan.retry_interval_seconds) is float and plan.retry_interval_seconds == 60.0
    assert plan.activities[0].parameters == {"x": [1, 2], "nested": {"a": None}}


def test_a_payload_written_before_a_field_existed_takes_its_default():
    old = ActivityInput(41, 1, "first", 1, 1, {}, {})
    data = {k: v for k, v in dataclasses.asdict(old).items() if k not in ("then_check", "completes", "begins_run")}
    payload = DEFAULT.to_payloads([data])
    assert OURS.from_payloads(payload, [ActivityInput]) == [old]


def test_other_values_are_temporals_as_before():
    values = [3, "text", None, [1, "a"], {"k": [1]}, b"raw", datetime(2026, 11, 27, tzinfo=UTC).isoformat()]
    for value in values:
        payload = OURS.to_payloads([value])
        assert payload == DEFAULT.to_payloads([value])
        assert OURS.from_payloads(payload, [type(value)]) == [value]
    assert OURS.from_payloads(DEFAULT.to_payloads([1.0]), [float]) == [1.0]
    with pytest.raises(Exception, match="Expected value to be str"):
        OURS.from_payloads([Payload(metadata={"encoding": b"json/plain"}, data=b"5")], [str])
