"""W1 with OpenTelemetry and prometheus_client absent, installed, or configured.

    PYTHONPATH=src python bench/otel_overhead.py MODE --only w1 --out /tmp/MODE.md

Modes: ``absent`` hides opentelemetry and prometheus_client from this process, as if they were
not installed; ``api``: OpenTelemetry installed, no provider set; ``prometheus``:
prometheus_client installed (this process's finished-attempt figures are kept); ``sdk``: a
tracer provider whose spans go through a batch processor to an exporter that drops them, and a
meter provider whose reader collects every 10 s. Each mode but ``prometheus`` hides
prometheus_client, and ``prometheus`` hides opentelemetry. The other arguments are
``bench/run.py``'s; only the in-process figures apply (worker processes of the multi-process
W1 start without this set-up).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

MODES = ("absent", "api", "prometheus", "sdk")


def hide(*names: str) -> None:
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]


def configure_sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        InMemoryMetricReader,
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    class DropMetrics(MetricExporter):
        def export(self, data: Any, timeout_millis: float = 0, **kwargs: Any) -> MetricExportResult:
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 0) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 0, **kwargs: Any) -> None:
            return None

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    readers = [PeriodicExportingMetricReader(DropMetrics(), export_interval_millis=10_000)]
    metrics.set_meter_provider(MeterProvider(metric_readers=[*readers, InMemoryMetricReader()]))


def main() -> int:
    mode, argv = sys.argv[1], sys.argv[2:]
    if mode not in MODES:
        raise SystemExit(f"usage: otel_overhead.py {{{','.join(MODES)}}} [run.py options]")
    hide(*(["opentelemetry"] if mode in ("absent", "prometheus") else []))
    if mode != "prometheus":
        hide("prometheus_client")
    if mode == "sdk":
        configure_sdk()
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    import run

    return int(run.main(argv) or 0)


if __name__ == "__main__":
    sys.exit(main())
