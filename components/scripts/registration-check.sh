# Waits until the registration address answers, verifying its TLS certificate with the
# host-effect: nothing
# cluster CA given on stdin (never skipping verification). In: REGISTRATION_URL, TIMEOUT.
ca=$(mktemp)
trap 'rm -f "$ca"' EXIT
cat > "$ca"
deadline=$(( $(date +%s) + TIMEOUT ))
until out=$(curl -sf --cacert "$ca" --max-time 5 "$REGISTRATION_URL/ping") && [ "$out" = pong ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "$REGISTRATION_URL/ping did not answer within ${TIMEOUT}s"
  log "waiting for $REGISTRATION_URL"
  sleep 3
done
log "$REGISTRATION_URL answers and its certificate chains to the cluster CA"
echo ok
