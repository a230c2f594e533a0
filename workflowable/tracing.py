"""Optional OpenTelemetry tracing (WORKFLOWABLE_TRACING, and `pip install 'workflowable[tracing]'`).

The Temporal SDK's OpenTelemetry interceptor on the client (and so on the worker built from it)
makes a span of each workflow start, workflow run, activity start and activity run, carried
across processes in Temporal's headers; `trigger_event` opens a span around them, so a process's
trace runs from the trigger through every activity. Each activity's span is given the process
id, the workflow and the activity as attributes. Spans go to the process's tracer provider:
configure one (an exporter to your collector), for example with `opentelemetry-instrument`.
Without OpenTelemetry installed, nothing here does anything but say so when asked to trace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from .errors import InvalidArgument

try:
    from opentelemetry import trace
except ImportError:  # the optional extra is not installed
    trace = None  # type: ignore[assignment]

#: Attribute names on spans.
PROCESS_ID = "workflowable.process_id"
WORKFLOW = "workflowable.workflow"
ACTIVITY = "workflowable.activity"
EVENT = "workflowable.event"


def interceptors(enabled: bool) -> list[Any]:
    """The client interceptors tracing needs (none when off)."""
    if not enabled:
        return []
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError:
        raise InvalidArgument("WORKFLOWABLE_TRACING needs OpenTelemetry: pip install 'workflowable[tracing]'") from None
    return [TracingInterceptor()]


@contextlib.contextmanager
def span(name: str, *, enabled: bool, **attributes: Any) -> Iterator[Any]:
    """A span of Workflowable's own, current inside the block, if tracing is `enabled`."""
    if trace is None or not enabled:
        yield None
        return
    with trace.get_tracer("workflowable").start_as_current_span(name, attributes=attributes) as current:
        yield current


def annotate(**attributes: Any) -> None:
    """Set attributes on the current span, if one is recording."""
    if trace is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)
