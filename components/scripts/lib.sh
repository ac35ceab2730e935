# Shared helpers, prepended to every host script by components/scripts.py.
# Values the program passes are assigned above this block, each quoted with shlex.quote.
set -eu
umask 077

log() { printf '[rke2-rancher %s@%s] %s\n' "$STEP" "$(hostname)" "$*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

rke2_bin() {
  for d in /usr/local/bin /opt/rke2/bin /usr/bin; do
    if [ -x "$d/$1" ]; then printf '%s\n' "$d/$1"; return 0; fi
  done
  return 1
}

kubectl_local() {
  /var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml "$@"
}

show_service_log() {
  log "last lines of the $1 log:"
  journalctl -u "$1" -n 40 --no-pager >&2 2>/dev/null || true
}

# systemctl start of rke2 blocks until the server is up (Type=notify, no start timeout),
# so every start is bounded.
start_unit() {  # unit action(start|restart) timeout
  log "systemctl $2 $1 (timeout ${3}s)"
  if ! timeout "$3" systemctl "$2" "$1"; then
    show_service_log "$1"
    fail "$1 did not $2 within ${3}s"
  fi
}

wait_api_ready() {  # timeout
  deadline=$(( $(date +%s) + $1 ))
  n=0
  while :; do
    if out=$(kubectl_local get --raw /readyz 2>/dev/null) && [ "$out" = ok ]; then
      log "API server ready (/readyz ok)"
      return 0
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      show_service_log rke2-server
      fail "API server not ready after ${1}s"
    fi
    n=$((n + 1))
    if [ $((n % 5)) -eq 0 ]; then log "waiting for /readyz ($(( deadline - $(date +%s) ))s left)"; fi
    sleep 2
  done
}

# Writes stdin to $1 atomically (temp file in the same directory, then rename) with
# mode $2. Prints "changed" or "unchanged" so the step's output tells what happened.
write_atomically() {
  dest=$1 mode=$2
  dir=$(dirname "$dest")
  mkdir -p "$dir"
  tmp=$(mktemp "$dir/.rke2-rancher.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  cat > "$tmp"
  chmod "$mode" "$tmp"
  if [ -f "$dest" ] && cmp -s "$tmp" "$dest"; then
    chmod "$mode" "$dest"
    rm -f "$tmp"
    log "$dest unchanged"
    echo unchanged
  else
    mv -f "$tmp" "$dest"
    log "$dest written (mode $mode)"
    echo changed
  fi
  trap - EXIT
}

# Asks RKE2 to remove the etcd member of Node $2, through the kubectl function named $1, and
# waits up to $3 s. RKE2's managed etcd member controller (k3s pkg/etcd/member_controller.go
# `sync`) removes the member of a Node annotated etcd.rke2.cattle.io/remove=true and marks the
# Node etcd.rke2.cattle.io/removed-node-name; when etcd refuses (the only voting member) it
# clears the annotation instead: returns 1 then. Fails when nothing happened in time.
remove_etcd_member() {  # kubectl-function node timeout
  rk=$1 rnode=$2 rdeadline=$(( $(date +%s) + $3 ))
  log "asking RKE2 to remove the etcd member of $rnode (annotation etcd.rke2.cattle.io/remove=true)"
  "$rk" annotate node "$rnode" --overwrite etcd.rke2.cattle.io/remove=true >&2 ||
    fail "cannot annotate node $rnode: nothing was removed"
  rn=0
  while :; do
    removed=$("$rk" get node "$rnode" -o 'jsonpath={.metadata.annotations.etcd\.rke2\.cattle\.io/removed-node-name}' 2>/dev/null || true)
    if [ -n "$removed" ]; then log "etcd member $removed removed"; return 0; fi
    requested=$("$rk" get node "$rnode" -o 'jsonpath={.metadata.annotations.etcd\.rke2\.cattle\.io/remove}' 2>/dev/null || echo unknown)
    if [ -z "$requested" ]; then return 1; fi
    if [ "$(date +%s)" -ge "$rdeadline" ]; then
      fail "the etcd member of $rnode was not removed within ${3}s. Check the servers' logs (\"Removing etcd member from cluster due to remove annotation\")"
    fi
    rn=$((rn + 1))
    if [ $((rn % 5)) -eq 0 ]; then log "waiting for RKE2 to remove the etcd member of $rnode"; fi
    sleep 2
  done
}
