#!/usr/bin/env bash
# Build Jaeger v2 (all-in-one, in-memory storage) from its Go module into a git-ignored
# folder, reusing the binary when it is already there.
#
#   tools/jaeger/build.sh            # prints the binary's path
#   FORCE=1 tools/jaeger/build.sh    # rebuild even when present
#   JAEGER_OUT=/some/dir/jaeger tools/jaeger/build.sh
#
# The first build takes about 5 minutes on an idle 2-core machine (38 minutes was
# measured on a busy one); the Go build cache makes later rebuilds quick.
# tracing/jaegertest looks for the binary at the same default path (or
# $FLOTILLA_JAEGER_BIN).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="${JAEGER_OUT:-$root/.cache/jaeger/jaeger}"

if [[ -x "$out" && -z "${FORCE:-}" ]]; then
	echo "$out"
	exit 0
fi

mkdir -p "$(dirname "$out")"
cd "$here"
# go.sum is committed: the build needs only the module proxy, never the checksum
# database (whose mirror, on some networks, lacks the OpenTelemetry collector modules).
if [[ ! -f go.sum ]]; then
	GONOSUMDB="${GONOSUMDB:-go.opentelemetry.io/collector,github.com/open-telemetry/opentelemetry-collector-contrib}" go mod tidy
fi
start=$(date +%s)
echo "building Jaeger $(go list -m -f '{{.Version}}' github.com/jaegertracing/jaeger) into $out (first build: 5+ min on 2 cores)" >&2
# Build to a temporary name and rename, so an interrupted build never leaves a
# half-written binary that a later run would reuse.
go build -trimpath -o "$out.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start ))s" >&2
echo "$out"
