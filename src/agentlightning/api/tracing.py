"""OpenTelemetry tracing of HTTP requests and database statements, exported over OTLP.

Off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the standard OpenTelemetry variable) or
``AGL_OTEL_ENABLED`` is set; the exporter reads the other standard ``OTEL_*`` variables itself.
Agent runs keep their own spans in the database (``trace_spans``) for RL; these traces are for
operators following a request through the API, the database and Redis.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agentlightning.settings import Settings

log = logging.getLogger(__name__)

#: URLs not worth a trace (probes and scrapes), as the instrumentation's comma-separated regexes.
EXCLUDED_URLS = "/metrics,/api/v2/health"


def tracing_requested(settings: Settings) -> bool:
    """True when the deployment asked for traces."""
    return settings.agl_otel_enabled or bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def setup_tracing(app: FastAPI, settings: Settings, *, exporter: Any = None) -> Any:
    """Instrument ``app`` (and, once the context exists, its engine); returns the tracer provider.

    ``exporter`` replaces the OTLP exporter (tests pass an in-memory one).
    """
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        log.warning("tracing requested but the [otel] extra is not installed; continuing without traces")
        return None
    from agentlightning import __version__

    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.agl_otel_service_name, "service.version": __version__})
    )
    if exporter is None:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, excluded_urls=EXCLUDED_URLS)
    app.state.tracer_provider = provider
    return provider


def instrument_engine(sync_engine: Any, provider: Any) -> None:
    """Trace every SQL statement of ``sync_engine`` under the request's span."""
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    instrumentor = SQLAlchemyInstrumentor()  # a per-process singleton: one API app per process
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    # The instrumentation declares support up to SQLAlchemy 2.0 but works on 2.1 (tested here).
    instrumentor.instrument(engine=sync_engine, tracer_provider=provider, enable_commenter=False, skip_dep_check=True)
