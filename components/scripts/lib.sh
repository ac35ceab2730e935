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
