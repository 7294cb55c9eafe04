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

socket="${scratch}/sidecar.sock"
"${sidecar_bin}" --listen 127.0.0.1:0 --unix "${socket}" --data-dir "${scratch}/data" \
  >"${scratch}/sidecar.out" 2>"${scratch}/sidecar.log" &
server_pid=$!
deadline=$((SECONDS + 30))
until grep -q "listening on" "${scratch}/sidecar.out" 2>/dev/null; do
  if ! kill -0 "${server_pid}" 2>/dev/null || ((SECONDS >= deadline)); then
    echo "msgsdk-sidecar did not start:" >&2
    cat "${scratch}/sidecar.log" >&2
    exit 1
  fi
  sleep 0.05
done

PYTHONPATH="${scratch}/stubs" "${python}" "${here}/sidecar_client.py" "unix:${socket}"
