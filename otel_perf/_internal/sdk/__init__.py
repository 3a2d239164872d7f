"""The OpenTelemetry SDK pipeline: providers and exporters, pipeline health, deferred histograms, the fast OTLP span encoder."""
