"""One logging set-up for the worker and the command line: a level, timestamps, and on every
line written from inside an activity or a process workflow the process id and the activity (or
workflow) it is about; text for people, or one JSON object per line for log shippers.

`configure_logging(settings)` installs it on the root logger (`workflowable worker` and the
command do; an application that embeds a worker may call it, or keep its own set-up and add
`ProcessContext` to its handlers).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from temporalio import activity, workflow

from .settings import Settings
from .workflows.messages import process_id_of

#: Marks the handler this module installed, so that configuring again replaces it.
_OURS = "workflowable"


class ProcessContext(logging.Filter):
    """Adds `process_id` and `doing` (the activity type and its attempt id, or the workflow type)
    to a record logged from inside an activity or a process workflow; None elsewhere."""

    def filter(self, record: logging.LogRecord) -> bool:
        process_id = doing = None
        if activity.in_activity():
            info = activity.info()
            process_id, doing = _process_id(info.workflow_id), f"{info.activity_type} {info.activity_id}"
        elif workflow.in_workflow():
            running = workflow.info()
            process_id, doing = _process_id(running.workflow_id), running.workflow_type
        record.process_id, record.doing = process_id, doing
        return True


def _process_id(workflow_id: str | None) -> str | None:
    if not workflow_id:
        return None
    found = process_id_of(workflow_id)
    return found if found.isdigit() else None


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        process_id = getattr(record, "process_id", None)
        about = f" [process {process_id} {getattr(record, 'doing', '')}]" if process_id else ""
        line = f"{when} {record.levelname:<7} {record.name}{about}: {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "process_id", None):
            entry["process_id"] = int(record.process_id)  # type: ignore[attr-defined]
            entry["doing"] = record.doing  # type: ignore[attr-defined]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at `settings.log_level`, as text or JSON (`settings.log_format`)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _OURS]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_OURS)
    handler.addFilter(ProcessContext())
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # The fields are on every record already: the SDK need not append them to the message too.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False
