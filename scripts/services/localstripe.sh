# Starts localstripe (a Stripe API emulator) on 127.0.0.1 for the connector tests and
# exports FLOW_TEST_LOCALSTRIPE_URL. Sourced by scripts/test.sh; prints why and exports
# nothing when it cannot start.
# shellcheck source=/dev/null
source scripts/services/lib/python.sh
flow_start_localstripe() {
  local venv port
  if ! venv=$(flow_services_venv); then
    echo "localstripe: cannot install it from PyPI; the Stripe connector tests will be skipped"
    return 0
  fi
  port=$(flow_free_port)
  "$venv/bin/localstripe" --port "$port" >"$FLOW_TEST_SERVICES_DIR/localstripe.log" 2>&1 &
  echo $! >"$FLOW_TEST_SERVICES_DIR/localstripe.pid"
  if flow_wait_http "http://127.0.0.1:$port/v1/customers" 60; then
    export FLOW_TEST_LOCALSTRIPE_URL="http://127.0.0.1:$port"
    echo "localstripe: $FLOW_TEST_LOCALSTRIPE_URL"
  else
    echo "localstripe: did not answer within 60s (see $FLOW_TEST_SERVICES_DIR/localstripe.log); the Stripe connector tests will be skipped"
  fi
}
flow_start_localstripe
