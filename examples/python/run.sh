#!/usr/bin/env bash
# Runs the Python example against a msgsdk-sidecar of its own: generates the Python stubs from
# the published .proto, starts the sidecar on a Unix socket in a scratch directory (the built-in
# embedded cluster), runs sidecar_client.py, and stops the sidecar. Used by CTest
# (python_sidecar_example) and runnable by hand.
#
# Usage: examples/python/run.sh PATH/TO/msgsdk-sidecar
# Needs Debian's python3-grpcio, python3-protobuf, protobuf-compiler and protobuf-compiler-grpc.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/common.sh
source "${here}/../../scripts/common.sh"

sidecar_bin="$1"
proto_dir="${here}/../../sidecar/proto"
# Debian's interpreter, where python3-grpcio lives (another python3 may come first on PATH).
python=/usr/bin/python3

msgsdk_scratch msgsdk-python

mkdir -p "${scratch}/stubs"
protoc --proto_path="${proto_dir}" --python_out="${scratch}/stubs" \
  --grpc_python_out="${scratch}/stubs" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "${proto_dir}/msgsdk/v1/messaging.proto"

msgsdk_start_sidecar "${sidecar_bin}"

PYTHONPATH="${scratch}/stubs" "${python}" "${here}/sidecar_client.py" "unix:${socket}"
