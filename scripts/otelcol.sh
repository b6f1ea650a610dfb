#!/usr/bin/env bash
# Builds, once, a minimal OpenTelemetry Collector (OTLP receiver over HTTP and
# gRPC, batch processor, debug exporter) with the collector builder, and
# prints the binary's path. The integration tests run tokentap against it.
#
# Versions: builder and components v0.162.0, config providers v1.68.0 — the
# newest the Go module proxy serves in a buildable set (go-deps-perf.md §6).
# The binary is cached in $TOKENTAP_CACHE (default ~/.cache/tokentap).
set -euo pipefail
cache=${TOKENTAP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tokentap}
out=$cache/otelcol-mini
bin=$out/otelcol-mini
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$out" "$cache/bin"
if [ ! -x "$cache/bin/builder" ]; then
  GOBIN=$cache/bin go install go.opentelemetry.io/collector/cmd/builder@v0.162.0 >&2
fi
cat > "$out/manifest.yaml" <<YAML
dist:
  name: otelcol-mini
  description: Minimal OTLP collector for tokentap's tests
  output_path: $out
receivers:
  - gomod: go.opentelemetry.io/collector/receiver/otlpreceiver v0.162.0
exporters:
  - gomod: go.opentelemetry.io/collector/exporter/debugexporter v0.162.0
processors:
  - gomod: go.opentelemetry.io/collector/processor/batchprocessor v0.162.0
providers:
  - gomod: go.opentelemetry.io/collector/confmap/provider/fileprovider v1.68.0
  - gomod: go.opentelemetry.io/collector/confmap/provider/envprovider v1.68.0
  - gomod: go.opentelemetry.io/collector/confmap/provider/yamlprovider v1.68.0
YAML
"$cache/bin/builder" --config "$out/manifest.yaml" >&2
test -x "$bin"
echo "$bin"
