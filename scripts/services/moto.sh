# Starts moto's AWS emulator (S3, SQS, SNS, CloudWatch) on 127.0.0.1 for the connector
# tests and exports FLOW_TEST_MOTO_URL. Sourced by scripts/test.sh; prints why and
# exports nothing when it cannot start.
# shellcheck source=/dev/null
source scripts/services/lib/python.sh
flow_start_moto() {
  local venv port
  if ! venv=$(flow_services_venv); then
    echo "moto: cannot install moto[server] from PyPI; the AWS connector tests will be skipped"
    return 0
  fi
  port=$(flow_free_port)
  "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$FLOW_TEST_SERVICES_DIR/moto.log" 2>&1 &
  echo $! >"$FLOW_TEST_SERVICES_DIR/moto.pid"
  if flow_wait_http "http://127.0.0.1:$port/moto-api/" 60; then
    export FLOW_TEST_MOTO_URL="http://127.0.0.1:$port"
    echo "moto: $FLOW_TEST_MOTO_URL"
  else
    echo "moto: did not answer within 60s (see $FLOW_TEST_SERVICES_DIR/moto.log); the AWS connector tests will be skipped"
  fi
}
flow_start_moto
