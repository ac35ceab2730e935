# Runs on a server: waits until node NODE is Ready; on destroy (ACTION=remove) cordons,
# host-effect: drain if ACTION=remove; nothing
# drains and deletes it, with its node-password secret, so the name can be reused.
# In: NODE, ACTION (wait|remove), TIMEOUT.
if [ "$ACTION" = remove ]; then
  if kubectl_local get node "$NODE" >/dev/null 2>&1; then
    log "cordon and drain $NODE"
    kubectl_local cordon "$NODE" >&2 || true
    kubectl_local drain "$NODE" --ignore-daemonsets --delete-emptydir-data --force --timeout="${TIMEOUT}s" >&2 ||
      log "drain did not finish; deleting the node anyway"
    kubectl_local delete node "$NODE" >&2
  fi
  kubectl_local -n kube-system delete secret "$NODE.node-password.rke2" --ignore-not-found >&2 || true
  log "$NODE removed from the cluster"
  exit 0
fi
deadline=$(( $(date +%s) + TIMEOUT ))
while :; do
  status=$(kubectl_local get node "$NODE" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "$status" = True ] && break
  [ "$(date +%s)" -lt "$deadline" ] || fail "node $NODE not Ready after ${TIMEOUT}s (Ready=${status:-unknown})"
  log "waiting for node $NODE to be Ready (Ready=${status:-not registered})"
  sleep 3
done
log "node $NODE is Ready"
echo ready
