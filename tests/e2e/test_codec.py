"""The payload codec: with a payload_key, no token value is readable in Temporal's history."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import pytest
from pydantic import SecretStr

from tests.conftest import serving, unique
from tests.e2e.test_dispatch import run_cli
from workflowable import ActivityContext, ActivityType, ProcessStatus, Workflowable, WorkflowDefinition, WorkflowEvent
from workflowable.codec import EncryptionCodec, InvalidPayloadKey, codec_from
from workflowable.ops.devstack import temporal_binary
from workflowable.workflows.messages import workflow_id_for


class PatientAdmitted(WorkflowEvent):
    name: str


class Greet(ActivityType):
    async def handle(self, ctx: ActivityContext) -> None:
        ctx.set_output("greeting", f"Hello {ctx.tokens['name']}")


def new_key() -> SecretStr:
    return SecretStr(base64.b64encode(os.urandom(32)).decode())


def history_text(settings, process_id: int) -> str:
    """`temporal workflow show` as JSON, with every base64 payload decoded as well."""
    shown = subprocess.run(
        [str(temporal_binary()), "workflow", "show", "--address", settings.temporal_target, "--workflow-id", workflow_id_for(process_id),
         "--output", "json"],
        capture_output=True, text=True, timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    decoded: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    decoded.append(base64.b64decode(value + "==").decode("utf-8", "replace"))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads(shown.stdout))
    return shown.stdout + "\n".join(decoded)


async def run_one(settings, task_queue: str, name: str) -> int:
    PatientAdmitted.task_queue = task_queue
    workflow = unique("admission")
    flow = WorkflowDefinition(workflow, event=PatientAdmitted)
    flow.start(flow.activity("greet", Greet))
    async with await Workflowable.connect(settings) as client:
        await client.save_workflow(flow, activate=True)
        try:
            async with serving(settings, [Greet], task_queue=task_queue):
                created, = await client.trigger_event(PatientAdmitted(name=name))
                done = await client.wait_for_process(created.id, timeout=60)
        finally:
            await client.deactivate_workflow(workflow)
    assert done.status is ProcessStatus.COMPLETED
    assert done.token_values["greeting"] == f"Hello {name}"  # the mirror keeps plain text
    return created.id


async def test_with_a_payload_key_tokens_are_ciphertext_in_the_history(settings, task_queue):
    secret = f"Jane Roe {uuid.uuid4().hex}"
    encrypted = await run_one(settings.model_copy(update={"payload_key": new_key()}), task_queue, secret)
    assert secret not in history_text(settings, encrypted)
    # The same run without a key shows the name: the check above can fail.
    plain = await run_one(settings, task_queue, secret)
    assert secret in history_text(settings, plain)


async def test_a_bad_or_wrong_key_is_a_clear_error_that_never_shows_the_key(settings):
    with pytest.raises(InvalidPayloadKey, match="not base64"):
        codec_from(settings.model_copy(update={"payload_key": SecretStr("not a key!")}))
    with pytest.raises(InvalidPayloadKey, match="16, 24 or 32 bytes, not 5"):
        codec_from(settings.model_copy(update={"payload_key": SecretStr(base64.b64encode(b"short").decode())}))
    one, other = EncryptionCodec(os.urandom(32)), EncryptionCodec(os.urandom(32))
    sealed = await one.encode([_payload(b"x")])
    assert await one.decode(sealed) == [_payload(b"x")] and sealed[0].data != b"x"
    with pytest.raises(InvalidPayloadKey, match=f"encrypted with key '{one.key_id}'"):
        await other.decode(sealed)
    key = new_key()
    code, output = await run_cli(settings.model_copy(update={"payload_key": key}), "check")
    assert code == 0 and "AES-GCM, key fingerprint" in output, output
    assert key.get_secret_value() not in output
    code, output = await run_cli(settings.model_copy(update={"payload_key": SecretStr("bm90IGEga2V5")}), "check")
    assert code == 1 and "16, 24 or 32 bytes, not 9" in output and "bm90IGEga2V5" not in output, output
    assert key.get_secret_value() not in repr(settings.model_copy(update={"payload_key": key}))


def _payload(data: bytes):
    from temporalio.api.common.v1 import Payload

    return Payload(metadata={"encoding": b"binary/plain"}, data=data)
