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

# A second moto that checks every request's SigV4 signature (after its first three
# requests, which create an IAM user allowed everything and its access key); exports
# FLOW_TEST_MOTO_AUTH_URL, FLOW_TEST_MOTO_AUTH_KEY_ID and FLOW_TEST_MOTO_AUTH_SECRET.
flow_start_moto_auth() {
  local venv port key
  venv=$(flow_services_venv) || return 0
  port=$(flow_free_port)
  INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$FLOW_TEST_SERVICES_DIR/moto-auth.log" 2>&1 &
  echo $! >"$FLOW_TEST_SERVICES_DIR/moto-auth.pid"
  if ! flow_wait_http "http://127.0.0.1:$port/moto-api/" 60; then
    echo "moto (signature checks): did not answer within 60s; the signature test will be skipped"
    return 0
  fi
  if ! key=$("$venv/bin/python" - "$port" <<'PY'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
                   aws_access_key_id="setup", aws_secret_access_key="setup")
iam.create_user(UserName="flow")
iam.put_user_policy(UserName="flow", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="flow")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
  ); then
    echo "moto (signature checks): cannot create its IAM user; the signature test will be skipped"
    return 0
  fi
  export FLOW_TEST_MOTO_AUTH_URL="http://127.0.0.1:$port"
  export FLOW_TEST_MOTO_AUTH_KEY_ID="${key%% *}"
  export FLOW_TEST_MOTO_AUTH_SECRET="${key#* }"
  echo "moto (signature checks): $FLOW_TEST_MOTO_AUTH_URL"
}
flow_start_moto_auth
