# Enables and starts the RKE2 unit, then waits until it serves.
# In: UNIT (rke2-server|rke2-agent), ACTION (restart: restart when running, used when the
# version or config changed; ensure: start only when stopped, never restart),
# TIMEOUT, SINGLE_SERVER (1: automate the etcd member reset after an IP change).
systemctl enable "$UNIT" >/dev/null 2>&1 || fail "systemctl enable $UNIT"
if systemctl is-active --quiet "$UNIT"; then
  if [ "$ACTION" = restart ]; then start_unit "$UNIT" restart "$TIMEOUT"; else log "$UNIT already running"; fi
elif ! timeout "$TIMEOUT" systemctl start "$UNIT"; then
  # A single server whose node IP changed refuses to start ("not a member of the etcd
  # cluster") and never heals by itself: reset the one-member etcd to the new address.
  if [ "$UNIT" = rke2-server ] && [ "$SINGLE_SERVER" = 1 ] &&
     journalctl -u "$UNIT" -n 200 --no-pager 2>/dev/null | grep -q 'not a member of the etcd cluster'; then
    log "etcd member address changed: running rke2 server --cluster-reset (single server)"
    systemctl stop "$UNIT" 2>/dev/null || true
    timeout "$TIMEOUT" "$(rke2_bin rke2)" server --cluster-reset >&2 || fail "cluster-reset failed"
    start_unit "$UNIT" start "$TIMEOUT"
  else
    show_service_log "$UNIT"
    fail "$UNIT did not start within ${TIMEOUT}s"
  fi
fi
if [ "$UNIT" = rke2-server ]; then
  wait_api_ready "$TIMEOUT"
else
  systemctl is-active --quiet "$UNIT" || { show_service_log "$UNIT"; fail "$UNIT is not active"; }
fi
echo ready
