"""Prometheus metrics for a worker: the Temporal SDK's own (its runtime telemetry: workflow and
activity task latencies, pollers, sticky cache, ...) and Workflowable's (`messages.Metrics`),
served together on one endpoint by the SDK's runtime.

Workflowable records its own through Temporal's metric meters, so there is nothing more to
install and nothing is recorded when metrics are off (the meters are no-ops then): the process
workflow through `workflow.metric_meter()` (it records nothing while replaying), the worker's
activities through the runtime's meter, with instruments made once per worker.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.common import MetricCounter, MetricHistogramFloat
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from .errors import InvalidArgument
from .workflows.messages import Metrics

#: Buckets in seconds: an attempt runs from milliseconds to minutes; a mirror write takes a
#: millisecond or two unless Postgres is slow or away.
ATTEMPT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
WRITE_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 30]
WAIT_BUCKETS = [0.01, 0.1, 1, 10, 60, 300, 1800, 3600]

_runtimes: dict[str, Runtime] = {}


def prometheus_runtime(address: str) -> Runtime:
    """A Temporal runtime that serves Prometheus metrics on `address` (host:port), one per
    address in a process (the port is bound once)."""
    runtime = _runtimes.get(address)
    if runtime is None:
        config = PrometheusConfig(
            bind_address=address,
            counters_total_suffix=True,
            durations_as_seconds=True,
            histogram_bucket_overrides={
                Metrics.ATTEMPT_DURATION: ATTEMPT_BUCKETS,
                Metrics.MIRROR_WRITE: WRITE_BUCKETS,
                Metrics.LOCK_WAIT: WAIT_BUCKETS,
            },
        )
        try:
            runtime = Runtime(telemetry=TelemetryConfig(metrics=config))
        except Exception as exc:  # the SDK's own error: the address does not parse, or is in use
            raise InvalidArgument(f"cannot serve metrics on {address!r} (WORKFLOWABLE_METRICS_ADDRESS): {exc}") from None
        _runtimes[address] = runtime
    return runtime


@dataclass(frozen=True)
class WorkerMetrics:
    """The worker's instruments, made once from its client's runtime (no-ops without metrics)."""

    attempts: MetricCounter
    attempt_duration: MetricHistogramFloat
    mirror_write: MetricHistogramFloat
    mirror_retries: MetricCounter

    @classmethod
    def of(cls, client: Client) -> WorkerMetrics:
        meter = (client.service_client.config.runtime or Runtime.default()).metric_meter
        return cls(
            attempts=meter.create_counter(Metrics.ATTEMPTS, "Attempts of activities, by activity type and outcome"),
            attempt_duration=meter.create_histogram_float(Metrics.ATTEMPT_DURATION, "How long attempts took, their mirror writes included", "s"),
            mirror_write=meter.create_histogram_float(Metrics.MIRROR_WRITE, "How long an attempt's mirror write took, its retries included", "s"),
            mirror_retries=meter.create_counter(Metrics.MIRROR_RETRIES, "Tries of a mirror write that Postgres did not take"),
        )

    def attempt(self, activity_type: str, outcome: str, seconds: float) -> None:
        labels = {"activity_type": activity_type, "outcome": outcome}
        self.attempts.add(1, labels)
        self.attempt_duration.record(seconds, labels)
