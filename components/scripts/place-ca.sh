# cluster.ca: generated: places the stack's CA set before rke2 first starts.
# host-effect: file if created; refused if changed(stdin); nothing
# Stdin: one `relative-path mode base64-content` line per file (secret).
# Refuses to replace a different CA already on the host: that would orphan every
# certificate it issued (switch cluster.ca only on a fresh cluster).
tls=/var/lib/rancher/rke2/server/tls
marker=$tls/.rke2-rancher-ca
mkdir -p "$tls/etcd"
chmod 0700 "$tls"
if [ -f "$tls/server-ca.crt" ] && [ ! -f "$marker" ]; then
  fail "this server already has a CA created by RKE2 ($tls/server-ca.crt): cluster.ca: generated would orphan every certificate it issued; keep cluster.ca: rke2 for this cluster"
fi
changed=0
while read -r path mode content; do
  [ -n "$path" ] || continue
  case "$path" in /*|*..*) fail "refusing path $path" ;; esac
  want=$(mktemp)
  printf '%s' "$content" | base64 -d > "$want"
  if [ -f "$tls/$path" ]; then
    if ! cmp -s "$want" "$tls/$path"; then
      rm -f "$want"
      fail "$tls/$path differs from the stack's CA: refusing to replace a CA in use (CA rotation is explicit, see README)"
    fi
    rm -f "$want"
    chmod "$mode" "$tls/$path"
  else
    chmod "$mode" "$want"
    mv -f "$want" "$tls/$path"
    changed=1
  fi
done
[ -f "$marker" ] || echo generated > "$marker"
if [ "$changed" = 1 ]; then log "CA set placed in $tls"; echo placed; else log "CA set already in place"; echo unchanged; fi
