# Makes the API serving certificate (6443) and the supervisor certificate (9345) carry the
# host-effect: certs if changed(stdin); nothing
# wanted tls-san entries and drop the removed ones.
# RKE2 adds missing names at start, but never drops removed ones (shared/reference/rke2-facts.md).
# In: TIMEOUT; BUILTIN_SANS (names RKE2 adds by itself: never stale, see
# components/builtin_sans.py), one per line in openssl's spelling; HA (1: more than one server).
# Stdin: wanted SANs, one per line, as openssl prints them (DNS:x, IP Address:y).
#
# Removing a name, in this order (read in rancher/dynamiclistener and k3s, see below):
#  1. stop rke2-server: its supervisor holds the 9345 names in memory and, while it runs,
#     re-creates secret kube-system/rke2-serving from that cache when the secret is deleted
#     (dynamiclistener storage/kubernetes/controller.go: init() watches the secret, update()
#     -> saveInK8s() merges the cache into a new secret when it is NotFound);
#  2. delete serving-kube-apiserver.* and dynamic-cert.json (the file behind that cache:
#     k3s pkg/cluster/https.go tlsStorage(): memory.NewBacked(file.New(tls/dynamic-cert.json)));
#  3. delete secret kube-system/rke2-serving while the supervisor is stopped: at start the
#     supervisor merges the names of the secret into its certificate (saveInK8s() ->
#     factory.TLS.Merge(), the union of both name lists), so a secret left in place brings
#     the name back. The API stays reachable: the rke2-server unit has KillMode=process
#     (rancher/rke2 bundle/lib/systemd/system/rke2-server.service), so the static
#     kube-apiserver pod keeps running while the unit is stopped;
#  4. start rke2-server: both certificates are generated from the current names.
# In HA the secret is shared: any other running server re-creates it from its own cache, so
# the name leaves 9345 only once no server that still has it is running (logged, not fatal).
set -f  # SAN names (e.g. *.example.com) are never glob patterns
tls=/var/lib/rancher/rke2/server/tls
cert=$tls/serving-kube-apiserver.crt
state=/var/lib/rancher/rke2/server/rke2-rancher-tls-san.list
wanted=$(cat)
previous=$(cat "$state" 2>/dev/null || true)
nl='
'
# SANs contain spaces ("IP Address:10.0.0.1"): split lists on newlines only.
IFS=$nl

san_names() { openssl x509 -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr ',' '\n' | sed 's/^ *//'; }
cert_names() { san_names < "$cert"; }
supervisor_names() {  # the certificate served on 9345 now; no SNI, so no name is added by asking
  timeout 10 openssl s_client -connect 127.0.0.1:9345 -noservername </dev/null 2>/dev/null | san_names
}
in_list() { printf '%s\n' "$2" | grep -qxF -- "$1"; }
# openssl prints DNS names as configured; RKE2 compares them case-insensitively.
builtin() { printf '%s\n' "$BUILTIN_SANS" | grep -qixF -- "$1"; }
# IPv4 addresses of this host: RKE2 uses the default route's address as node IP when
# node-ip is not set (k3s pkg/util GetHostnameAndIPs), and puts it in the certificate.
host_ips=$(ip -o -4 addr show 2>/dev/null | awk '{ sub(/\/.*/, "", $4); print "IP Address:" $4 }' || true)

[ -f "$cert" ] || fail "$cert not found: is rke2-server running?"
have=$(cert_names)
missing="" stale=""
for n in $wanted; do in_list "$n" "$have" || missing="$missing$nl$n"; done
for n in $previous; do
  in_list "$n" "$wanted" && continue
  if builtin "$n" || in_list "$n" "$host_ips"; then
    log "$n is no longer a tls-san, but RKE2 adds it to its certificates by itself: it stays"
  elif in_list "$n" "$have"; then
    stale="$stale$nl$n"
  fi
done

if [ -n "$stale" ]; then
  log "removing$(printf '%s' "$stale" | tr '\n' ' '): regenerating the serving certificates"
  systemctl stop rke2-server
  rm -f "$tls/serving-kube-apiserver.crt" "$tls/serving-kube-apiserver.key" "$tls/dynamic-cert.json"
  if kubectl_local -n kube-system delete secret rke2-serving --ignore-not-found --request-timeout=20s >/dev/null 2>&1; then
    log "secret kube-system/rke2-serving deleted while the supervisor is stopped"
  else
    log "could not delete secret kube-system/rke2-serving (API not reachable while rke2-server is stopped): the supervisor certificate on 9345 may keep the removed names"
  fi
  start_unit rke2-server start "$TIMEOUT"
  wait_api_ready "$TIMEOUT"
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
if [ -n "$stale" ]; then
  if sup=$(supervisor_names) && [ -n "$sup" ]; then
    for n in $stale; do
      in_list "$n" "$sup" || continue
      if [ "$HA" = 0 ]; then fail "$n still present in the supervisor certificate on 9345"; fi
      log "$n still present in the supervisor certificate on 9345: another running server re-created the shared secret kube-system/rke2-serving from its cache; it stays while any server that has it runs"
    done
  else
    log "could not read the supervisor certificate on 127.0.0.1:9345"
  fi
fi
printf '%s\n' "$wanted" | write_atomically "$state" 0600 >/dev/null
log "tls-san refresh: $action"
echo "$action"
