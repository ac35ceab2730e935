# Writes a load balancer config from stdin, validated by the program itself before it
# host-effect: reload if changed(stdin) or changed(DEST); nothing
# replaces the live one, then reloads the service (HAProxy's reload keeps connections).
# In: DEST, UNIT, CHECK (haproxy|keepalived).
new=$(mktemp "$(dirname "$DEST")/.rke2-rancher.XXXXXX")
trap 'rm -f "$new"' EXIT
cat > "$new"
chmod 0644 "$new"
case "$CHECK" in
  haproxy) haproxy -c -q -f "$new" >&2 || fail "haproxy -c rejected the new config; the live one is unchanged" ;;
  keepalived) if keepalived --help 2>&1 | grep -q -- '--config-test'; then
                keepalived -t -f "$new" >&2 || fail "keepalived -t rejected the new config"
              fi ;;
esac
if [ -f "$DEST" ] && cmp -s "$new" "$DEST" && systemctl is-active --quiet "$UNIT"; then
  log "$DEST unchanged, $UNIT running"
  echo unchanged
  exit 0
fi
mv -f "$new" "$DEST"
trap - EXIT
systemctl enable "$UNIT" >/dev/null 2>&1 || true
if systemctl is-active --quiet "$UNIT"; then
  log "reloading $UNIT"
  systemctl reload "$UNIT" || fail "$UNIT reload failed"
else
  log "starting $UNIT"
  timeout 60 systemctl start "$UNIT" || { show_service_log "$UNIT"; fail "$UNIT did not start"; }
fi
echo applied
