# Helpers for the emulator scripts: a Python virtual environment under target/ with the
# pinned requirements, a free port, and waiting until a server answers. Sourced by the
# scripts next to it; defines functions only.

flow_services_venv() {
  local venv="$PWD/target/test-services/venv"
  local stamp="$venv/.requirements"
  if [[ -x "$venv/bin/python" ]] && cmp -s "$stamp" scripts/services/requirements.txt; then
    echo "$venv"
    return 0
  fi
  python3 -m venv "$venv" >&2 || return 1
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/services/requirements.txt >&2 || return 1
  cp scripts/services/requirements.txt "$stamp"
  echo "$venv"
}

flow_free_port() {
  flow_free_ports 1
}

# flow_free_ports N: N distinct free ports, one per line (the sockets are held together
# while choosing, so servers started one after another before any binds never share one).
flow_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
held = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); held.append(s)
print("\n".join(str(s.getsockname()[1]) for s in held))
for s in held: s.close()
PY
}

# flow_wait_http URL SECONDS: 0 once the URL answers (any status), 1 after SECONDS.
flow_wait_http() {
  python3 - "$1" "$2" <<'PY'
import sys, time, urllib.request, urllib.error
url, limit = sys.argv[1], float(sys.argv[2])
end = time.time() + limit
while time.time() < end:
    try:
        urllib.request.urlopen(url, timeout=2)
        sys.exit(0)
    except urllib.error.HTTPError:
        sys.exit(0)
    except Exception:
        time.sleep(0.25)
sys.exit(1)
PY
}
