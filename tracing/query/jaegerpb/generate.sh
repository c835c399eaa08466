#!/usr/bin/env bash
# Regenerates the Go stubs of Jaeger's remote storage v2 API
# (jaeger.storage.v2, and jaeger.expression.v1 which it imports) from the
# jaeger-idl protos. jaeger-idl's own Go packages are gogo-generated and panic
# with modern protobuf, so glassmesh generates and commits its own.
#
# Needs: protoc (tested with 3.21.12, apt-get install protobuf-compiler),
# protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.6.2 on PATH, and a checkout of
# open-telemetry/opentelemetry-proto (tag v1.9.0) in OTEL_PROTO_DIR: the OTLP
# Go types themselves come from go.opentelemetry.io/proto/otlp, only the
# .proto files are needed to parse the imports.
#
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
#   OTEL_PROTO_DIR=/path/to/opentelemetry-proto ./generate.sh
set -euo pipefail

cd "$(dirname "$0")"
: "${OTEL_PROTO_DIR:?set OTEL_PROTO_DIR to an opentelemetry-proto checkout}"

IDL_VERSION=v0.14.0
GNOSTIC_VERSION=v0.7.0
IDL_DIR=$(go mod download -json "github.com/jaegertracing/jaeger-idl@${IDL_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
GNOSTIC_DIR=$(go mod download -json "github.com/google/gnostic-models@${GNOSTIC_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')

# jaeger-idl imports gnostic's annotations as gnostic/openapiv3/...; they
# only carry OpenAPI options, and map to gnostic-models' Go package.
GNOSTIC_ROOT=$(mktemp -d)
trap 'rm -rf "$GNOSTIC_ROOT"' EXIT
ln -s "$GNOSTIC_DIR" "$GNOSTIC_ROOT/gnostic"

MOD=github.com/glassmesh/glassmesh/tracing/query/jaegerpb
M="Mstorage/v2/trace_storage.proto=${MOD}/storagev2;storagev2"
M="$M,Mstorage/v2/dependency_storage.proto=${MOD}/storagev2;storagev2"
M="$M,Mstorage/v2/capabilities.proto=${MOD}/storagev2;storagev2"
M="$M,Mexpression/v1/expression.proto=${MOD}/expressionv1;expressionv1"
M="$M,Mexpression/v1/vocabulary.proto=${MOD}/expressionv1;expressionv1"
M="$M,Mgnostic/openapiv3/annotations.proto=github.com/google/gnostic-models/openapiv3;openapi_v3"
M="$M,Mopentelemetry/proto/trace/v1/trace.proto=go.opentelemetry.io/proto/otlp/trace/v1"

rm -f storagev2/*.pb.go expressionv1/*.pb.go
protoc \
	-I "$IDL_DIR/proto" -I "$GNOSTIC_ROOT" -I "$GNOSTIC_DIR" -I "$OTEL_PROTO_DIR" \
	--go_out=. --go_opt=module=${MOD},"$M" \
	--go-grpc_out=. --go-grpc_opt=module=${MOD},"$M" \
	expression/v1/vocabulary.proto expression/v1/expression.proto \
	storage/v2/trace_storage.proto storage/v2/dependency_storage.proto storage/v2/capabilities.proto
