# Starts a PostgreSQL server (Debian's postgresql-15, installed when missing) on
# 127.0.0.1 with its data directory under target/, for the store conformance suite and
# the PostgreSQL store's tests, and exports FLOW_TEST_POSTGRES_URL (a superuser `flow`
# on database `postgres`; each test creates a database of its own),
# FLOW_TEST_POSTGRES_DATA, FLOW_TEST_POSTGRES_BIN and, when openssl made it a
# certificate (the server then takes TLS), FLOW_TEST_POSTGRES_CA. Sourced by
# scripts/test.sh; prints why and exports nothing when it cannot start. Stopped by scripts/test.sh's cleanup through its stop script.
# shellcheck source=/dev/null
source scripts/services/lib/python.sh
flow_pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n "$bin" && -x "$bin/initdb" ]] && echo "$bin"
}
# flow_pg_as CMD...: runs CMD as the user PostgreSQL runs as (it refuses root).
flow_pg_as() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
flow_start_postgres() {
  local bin data port
  if ! bin=$(flow_pg_bin); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      echo "postgres: installing postgresql-15 from Debian's packages"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15) \
        >"$FLOW_TEST_SERVICES_DIR/postgres-install.log" 2>&1 || true
    fi
    if ! bin=$(flow_pg_bin); then
      echo "postgres: not installed and cannot be installed (see $FLOW_TEST_SERVICES_DIR/postgres-install.log); the PostgreSQL store tests will be skipped"
      return 0
    fi
  fi
  data="$FLOW_TEST_SERVICES_DIR/postgres"
  rm -rf "$data"
  mkdir -p "$data"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$data"
    # The server's user must reach the directory; a checkout under a private directory
    # gets its data directory under /tmp instead.
    if ! runuser -u postgres -- test -w "$data"; then
      data=$(mktemp -d /tmp/flow-test-postgres.XXXXXX)
      chown postgres "$data"
    fi
  fi
  port=$(flow_free_port)
  # TLS: a throwaway CA and a certificate for 127.0.0.1, so the tests can connect with
  # sslmode=require and sslrootcert (without openssl, the server runs without TLS).
  local tls=""
  if command -v openssl >/dev/null && (
      cd "$data" &&
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=flow test CA" \
        -keyout ca.key -out ca.pem &&
      openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >server.ext &&
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem &&
      chmod 600 server.key && chmod 644 ca.pem
    ) >>"$FLOW_TEST_SERVICES_DIR/postgres.log" 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then chown postgres "$data/server.key" "$data/server.pem"; fi
    tls="-c ssl=on -c ssl_cert_file=$data/server.pem -c ssl_key_file=$data/server.key"
  fi
  if ! flow_pg_as "$bin/initdb" -D "$data/db" -U flow --auth=trust -E UTF8 --no-sync \
      >"$FLOW_TEST_SERVICES_DIR/postgres.log" 2>&1; then
    echo "postgres: initdb failed (see $FLOW_TEST_SERVICES_DIR/postgres.log); the PostgreSQL store tests will be skipped"
    return 0
  fi
  if ! flow_pg_as "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
      -o "-p $port -k $data -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_preload_libraries=pg_stat_statements $tls" start \
      >>"$FLOW_TEST_SERVICES_DIR/postgres.log" 2>&1; then
    echo "postgres: did not start (see $data/server.log); the PostgreSQL store tests will be skipped"
    return 0
  fi
  # The tests restart the server (a new process), so it is stopped by its data directory.
  if [[ $(id -u) -eq 0 ]]; then
    echo "runuser -u postgres -- '$bin/pg_ctl' -D '$data/db' -m fast stop" >"$FLOW_TEST_SERVICES_DIR/postgres.stop"
  else
    echo "'$bin/pg_ctl' -D '$data/db' -m fast stop" >"$FLOW_TEST_SERVICES_DIR/postgres.stop"
  fi
  export FLOW_TEST_POSTGRES_URL="postgres://flow@127.0.0.1:$port/postgres"
  export FLOW_TEST_POSTGRES_DATA="$data/db"
  export FLOW_TEST_POSTGRES_BIN="$bin"
  if [[ -n "$tls" ]]; then export FLOW_TEST_POSTGRES_CA="$data/ca.pem"; fi
  echo "postgres: $FLOW_TEST_POSTGRES_URL (data in $data/db)"
}
flow_start_postgres
