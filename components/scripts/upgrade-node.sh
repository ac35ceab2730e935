# Runs on servers[0] around one node's upgrade, once per new cluster.version (its trigger).
#   drain  before the node's install: cordon (leaving a marker file MARKS/<node> on this
#          server, unless someone had cordoned it already) and drain it. A node not registered (a new stack, a new
#          node) or already at TARGET is left alone, so a first install never drains anything.
#   ready  after the node's restart: wait until the Node is Ready (unless REQUIRE_READY=0: cni
#          none, where Nodes stay NotReady until the user's CNI runs) with a kubelet of TARGET's
#          Kubernetes version, then uncordon it when its marker says the drain cordoned it.
#   turn   before the drain of an agent in a later batch: wait until every node of the batch
#          before (AFTER) has finished: not registered (a first install, where every batch
#          starts at once), or at TARGET's Kubernetes version, Ready (unless REQUIRE_READY=0)
#          and no longer cordoned by its drain. Batches are taken in turn here, on the host,
#          not by the engine's dependencies, so a first install joins all agents in parallel.
#   check  any other update (a new address): changes nothing.
# Drain flags as `kubectl drain` names them: --ignore-daemonsets, --delete-emptydir-data
# (pods with local emptyDir data), --force (pods without a controller), --grace-period GRACE
# (-1: each pod's own), --timeout TIMEOUT; a drain that does not finish fails the step and
# stops the rollout with the node cordoned (the next `pulumi up` drains it again).
# host-effect: drain if created and ACTION=drain; nothing
# In: NODE, TARGET (cluster.version), ACTION (drain|ready|turn|check), TIMEOUT, GRACE, REQUIRE_READY (1|0),
# AFTER (turn only: space-separated node names of the batch before).
MARKS=/var/lib/rke2-rancher/upgrade-cordoned

k8s_part() { printf '%s\n' "${1%%+*}"; }

node_field() {  # jsonpath [node]
  kubectl_local get node "${2:-$NODE}" -o "jsonpath=$1"
}

# Why node $1 is still in its upgrade ("" when it is done or was never registered).
upgrading() {
  kubelet=$(node_field '{.status.nodeInfo.kubeletVersion}' "$1" 2>/dev/null) || return 0
  if [ "$(k8s_part "$kubelet")" != "$(k8s_part "$TARGET")" ]; then
    echo "kubelet $kubelet"
  elif [ -f "$MARKS/$1" ]; then
    echo "drained, not yet uncordoned"
  elif [ "$REQUIRE_READY" = 1 ] &&
       [ "$(node_field '{.status.conditions[?(@.type=="Ready")].status}' "$1" 2>/dev/null)" != True ]; then
    echo "not Ready"
  fi
}

case $ACTION in
  check)
    log "node $NODE: nothing to do on an update"
    echo checked
    ;;
  turn)
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
      waiting=""
      for other in $AFTER; do
        why=$(upgrading "$other")
        [ -z "$why" ] || waiting="$waiting $other ($why)"
      done
      [ -n "$waiting" ] || break
      [ "$(date +%s)" -lt "$deadline" ] ||
        fail "the batch before $NODE did not finish its upgrade to $TARGET within ${TIMEOUT}s:$waiting"
      log "$NODE waits for the batch before it:$waiting"
      sleep 3
    done
    log "$NODE: the batch before it is done, its turn"
    echo turn
    ;;
  drain)
    if ! kubelet=$(node_field '{.status.nodeInfo.kubeletVersion}' 2>/dev/null); then
      log "node $NODE is not registered: nothing to drain"
      echo "not-registered"
      exit 0
    fi
    if [ "$kubelet" = "$TARGET" ]; then
      log "node $NODE already runs $TARGET: nothing to drain"
      echo current
      exit 0
    fi
    if [ "$(node_field '{.spec.unschedulable}')" = true ]; then
      log "node $NODE was already cordoned: it stays cordoned after the upgrade"
    else
      mkdir -p "$MARKS"
      printf '%s\n' "$TARGET" > "$MARKS/$NODE"
      kubectl_local cordon "$NODE" >&2
    fi
    log "draining $NODE (kubelet $kubelet, upgrading to $TARGET; timeout ${TIMEOUT}s)"
    kubectl_local drain "$NODE" --ignore-daemonsets --delete-emptydir-data --force \
      --grace-period="$GRACE" --timeout="${TIMEOUT}s" >&2 ||
      fail "drain of $NODE did not finish within ${TIMEOUT}s: the node stays cordoned and is not upgraded (see the pods still on it, e.g. a PodDisruptionBudget)"
    log "node $NODE drained"
    echo drained
    ;;
  ready)
    want=$(k8s_part "$TARGET")
    deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
      status=$(node_field '{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
      kubelet=$(node_field '{.status.nodeInfo.kubeletVersion}' 2>/dev/null || true)
      if { [ "$status" = True ] || [ "$REQUIRE_READY" = 0 ]; } && [ "$(k8s_part "$kubelet")" = "$want" ]; then break; fi
      [ "$(date +%s)" -lt "$deadline" ] ||
        fail "node $NODE not Ready at $want after ${TIMEOUT}s (Ready=${status:-unknown}, kubelet ${kubelet:-unknown})"
      log "waiting for node $NODE: Ready=${status:-not registered}, kubelet ${kubelet:-unknown}, want $want"
      sleep 3
    done
    log "node $NODE is Ready (kubelet $kubelet)"
    if [ -f "$MARKS/$NODE" ]; then
      kubectl_local uncordon "$NODE" >&2
      rm -f "$MARKS/$NODE"
      log "node $NODE uncordoned"
      echo uncordoned
    else
      echo ready
    fi
    ;;
  *) fail "unknown ACTION $ACTION" ;;
esac
