# Enables and starts the RKE2 unit, then waits until it serves.
# host-effect: restart if ACTION=restart; nothing
# In: UNIT (rke2-server|rke2-agent), ACTION (restart: restart when running, used when the
# version or config changed; ensure: start only when stopped, never restart),
# TIMEOUT, SINGLE_SERVER (1: automate the etcd member reset after an IP change).
#
# A server whose node IP changed does not exit: k3s (pkg/cluster/managed.go, the etcd
# connection test) logs "not a member of the etcd cluster" and retries every 5 s, never
# sends READY=1, so the Type=notify unit stays "activating" with its ports open. The start is
# therefore queued without blocking and watched: the unit's state and the count of that
# message in its journal (a count, so clock skew and --since granularity do not matter).
NOT_MEMBER='not a member of the etcd cluster'

not_member_count() {
  journalctl -u "$UNIT" --no-pager -o cat 2>/dev/null | grep -c -- "$NOT_MEMBER" || true
}

# Queues `systemctl $1 $UNIT` and waits until the unit is active. Returns 0 when active,
# 2 when the not-a-member message appeared during the wait; fails on a failed unit or timeout.
start_and_watch() {  # start|restart
  base=$(not_member_count)
  log "systemctl $1 $UNIT (watching for up to ${TIMEOUT}s)"
  systemctl --no-block "$1" "$UNIT" || { show_service_log "$UNIT"; fail "systemctl $1 $UNIT"; }
  started=$(date +%s)
  deadline=$(( started + TIMEOUT ))
  n=0
  while :; do
    state=$(systemctl is-active "$UNIT" 2>/dev/null || true)
    case $state in
      active) log "$UNIT active after $(( $(date +%s) - started ))s"; return 0 ;;
      failed) show_service_log "$UNIT"; fail "$UNIT failed to $1" ;;
    esac
    if [ "$UNIT" = rke2-server ] && [ "$(not_member_count)" -gt "$base" ]; then
      log "$UNIT logs '$NOT_MEMBER' (state $state, after $(( $(date +%s) - started ))s)"
      return 2
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      show_service_log "$UNIT"
      fail "$UNIT did not $1 within ${TIMEOUT}s (state: ${state:-unknown})"
    fi
    n=$((n + 1))
    if [ $((n % 10)) -eq 0 ]; then log "waiting for $UNIT (state ${state:-unknown}, $(( deadline - $(date +%s) ))s left)"; fi
    sleep 1
  done
}

recover_not_member() {
  if [ "$SINGLE_SERVER" = 1 ]; then
    # One member: reset it to the new address (shared/reference/rke2-facts.md).
    log "etcd member address changed: running rke2 server --cluster-reset (single server)"
    systemctl stop "$UNIT" 2>/dev/null || true
    timeout "$TIMEOUT" "$(rke2_bin rke2)" server --cluster-reset >&2 || fail "cluster-reset failed"
    rc=0
    start_and_watch start || rc=$?
    [ "$rc" = 0 ] || { show_service_log "$UNIT"; fail "$UNIT still not a member of the etcd cluster after --cluster-reset"; }
  else
    show_service_log "$UNIT"
    fail "$UNIT did not start: this server is not a member of the etcd cluster (its node IP changed, see the log above); it keeps retrying and never becomes ready. With several servers there is no automatic reset: give it back its old node IP, or remove its etcd member on a healthy server and rejoin it"
  fi
}

systemctl enable "$UNIT" >/dev/null 2>&1 || fail "systemctl enable $UNIT"
verb=""
if systemctl is-active --quiet "$UNIT"; then
  if [ "$ACTION" = restart ]; then verb=restart; else log "$UNIT already running"; fi
else
  verb=start
fi
if [ -n "$verb" ]; then
  rc=0
  start_and_watch "$verb" || rc=$?
  if [ "$rc" = 2 ]; then recover_not_member; fi
fi
if [ "$UNIT" = rke2-server ]; then
  wait_api_ready "$TIMEOUT"
else
  systemctl is-active --quiet "$UNIT" || { show_service_log "$UNIT"; fail "$UNIT is not active"; }
fi
echo ready
