# What the webhook benchmarks share (sourced by scripts/bench-serve.sh and
# scripts/bench-soak.sh): a program whose workflow is started by a signed integration
# event, its connection, and the body and signature every delivery carries.
#   acme_setup WORK FLOW OWNER   writes WORK/app.flow and connects `acme` for OWNER in
#                                WORK/flow.db; sets acme_body and acme_signature.

acme_secret="whsec-bench"
acme_body='{"type":"ticket.updated","ticket":{"id":"T-1","queue":"support"}}'
export FLOW_VAULT_KEY=0000000000000000000000000000000000000000000000000000000000000000

acme_setup() {
  local work="$1" flow="$2" owner="$3"
  acme_signature="sha256=$(printf '%s' "$acme_body" | python3 -c 'import hmac,hashlib,sys; print(hmac.new(sys.argv[1].encode(), sys.stdin.buffer.read(), hashlib.sha256).hexdigest())' "$acme_secret")"
  cat > "$work/app.flow" <<'FLOW'
integration acme {
  base_url = "http://127.0.0.1:9"

  /// A ticket changed.
  event ticket_updated(queue: string? = null) -> { id: string, queue: string } {
    webhook "/acme/events"
    verify hmac_sha256(secret("webhook_secret"), header: "X-Acme-Signature", prefix: "sha256=")
    when payload.type == "ticket.updated" && (queue == null || payload.ticket.queue == queue)
    result payload.ticket
  }
}

workflow on_ticket -> string {
  on acme.ticket_updated(queue: "support")
  return event.id
}
FLOW
  (cd "$work" && printf '%s\n' "$acme_secret" | "$flow" connect acme --owner "$owner" --secret webhook_secret --store flow.db >/dev/null 2>&1)
}
