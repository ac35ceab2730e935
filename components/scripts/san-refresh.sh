# Makes the API serving certificate carry exactly the wanted tls-san entries.
# RKE2 adds missing names at start, but never drops removed ones: for those the cert
# must be deleted with the service stopped (shared/reference/rke2-facts.md).
# In: TIMEOUT. Stdin: wanted SANs, one per line, as openssl prints them (DNS:x, IP Address:y).
tls=/var/lib/rancher/rke2/server/tls
cert=$tls/serving-kube-apiserver.crt
state=/var/lib/rancher/rke2/server/rke2-rancher-tls-san.list
wanted=$(cat)
previous=$(cat "$state" 2>/dev/null || true)
nl='
'
# SANs contain spaces ("IP Address:10.0.0.1"): split lists on newlines only.
IFS=$nl

cert_names() { openssl x509 -noout -ext subjectAltName -in "$cert" 2>/dev/null | tail -n +2 | tr ',' '\n' | sed 's/^ *//'; }
in_list() { printf '%s\n' "$2" | grep -qxF -- "$1"; }

[ -f "$cert" ] || fail "$cert not found: is rke2-server running?"
have=$(cert_names)
missing="" stale=""
for n in $wanted; do in_list "$n" "$have" || missing="$missing$nl$n"; done
for n in $previous; do
  if ! in_list "$n" "$wanted" && in_list "$n" "$have"; then stale="$stale$nl$n"; fi
done

if [ -n "$stale" ]; then
  log "removing$(printf '%s' "$stale" | tr '\n' ' '): regenerating the serving certificates"
  systemctl stop rke2-server
  rm -f "$tls"/serving-kube-apiserver.* "$tls"/dynamic-cert.json
  start_unit rke2-server start "$TIMEOUT"
  wait_api_ready "$TIMEOUT"
  kubectl_local -n kube-system delete secret rke2-serving --ignore-not-found >/dev/null 2>&1 || true
  action=regenerated
elif [ -n "$missing" ]; then
  log "adding$(printf '%s' "$missing" | tr '\n' ' '): restarting rke2-server"
  start_unit rke2-server restart "$TIMEOUT"
  wait_api_ready "$TIMEOUT"
  action=restarted
else
  action=none
fi

have=$(cert_names)
for n in $wanted; do in_list "$n" "$have" || fail "$n still missing from $cert"; done
for n in $stale; do in_list "$n" "$have" && fail "$n still present in $cert"; done
printf '%s\n' "$wanted" | write_atomically "$state" 0600 >/dev/null
log "tls-san refresh: $action"
echo "$action"
