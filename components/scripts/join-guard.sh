# servers[0] of an HA cluster: never start a second cluster. RKE2 makes the first server
# host-effect: nothing
# initialise etcd whenever it has no etcd data, so a rebuilt first node would silently
# found a new cluster. When this host has no etcd data but a cluster already answers at
# the registration address, join it instead (a drop-in with `server:`).
# In: REGISTRATION_URL.
data=/var/lib/rancher/rke2/server/db/etcd

# The CA hash a K10 token pins, by the rule of k3s pkg/clientaccess/token.go hashCA: one
# certificate: sha256 of the file; several: sha256 of the DER of the root that the first
# certificate verifies to (roots: no authority key id, or one equal to the subject key id);
# no chain: sha256 of the file.
key_id() {  # cert extension-name: the key id only (not the DirName/serial an AKI may add)
  openssl x509 -in "$1" -noout -ext "$2" 2>/dev/null | sed 1d | tr -d ' ' | sed 's/^keyid://' |
    grep -E '^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})*$' | head -n 1
}
ca_hash() {  # file
  if [ "$(grep -c -- '-----BEGIN CERTIFICATE-----' "$1")" -gt 1 ]; then
    parts=$(mktemp -d)
    awk -v d="$parts" '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (d "/" n ".pem") }' "$1"
    : > "$parts/intermediates"
    roots=""
    for f in "$parts"/*.pem; do
      [ "$f" = "$parts/1.pem" ] && continue
      aki=$(key_id "$f" authorityKeyIdentifier)
      if [ -z "$aki" ] || [ "$aki" = "$(key_id "$f" subjectKeyIdentifier)" ]; then
        roots="$roots $f"
      else
        cat "$f" >> "$parts/intermediates"
      fi
    done
    for root in $roots; do
      # -partial_chain: a root by k3s's rule need not be self-signed (Go's Verify anchors at any
      # certificate in Roots).
      if openssl verify -partial_chain -CAfile "$root" -untrusted "$parts/intermediates" "$parts/1.pem" >/dev/null 2>&1 ||
         { [ ! -s "$parts/intermediates" ] && openssl verify -partial_chain -CAfile "$root" "$parts/1.pem" >/dev/null 2>&1; }; then
        openssl x509 -in "$root" -outform DER | sha256sum | awk '{ print $1 }'
        rm -rf "$parts"
        return 0
      fi
    done
    rm -rf "$parts"
  fi
  sha256sum "$1" | awk '{ print $1 }'
}
dropin=/etc/rancher/rke2/config.yaml.d/40-rke2-rancher-join.yaml
tokenfile=/etc/rancher/rke2/config.yaml.d/50-rke2-rancher-token.yaml
if [ -d "$data" ]; then
  log "etcd data present: this server is already a member"
  echo member
  exit 0
fi
cacerts=$(mktemp)
trap 'rm -f "$cacerts"' EXIT
# Trust on first use, pinned below by the token's CA hash; this is not a health check.
if ! curl -sk --max-time 10 -o "$cacerts" "$REGISTRATION_URL/cacerts" || [ ! -s "$cacerts" ]; then
  if [ -f "$dropin" ]; then rm -f "$dropin"; log "removed a stale join drop-in"; fi
  log "no cluster answers at $REGISTRATION_URL: this server initialises the cluster"
  echo initialise
  exit 0
fi
[ -f "$tokenfile" ] || fail "a cluster already answers at $REGISTRATION_URL but this server has no etcd data and no configured token: set rke2-rancher:token (secret) to that cluster's token to rejoin it; starting now would create a second cluster"
token=$(sed -n 's/^token: *//p' "$tokenfile" | tr -d "'\"")
case "$token" in
  K10*::*)
    want=${token#K10}
    want=${want%%::*}
    got=$(ca_hash "$cacerts")
    [ "$got" = "$want" ] || fail "the cluster at $REGISTRATION_URL has a different CA (sha256 $got) than the token pins ($want)"
    ;;
  *) log "token has no CA hash (not K10 form): RKE2 will verify the join itself" ;;
esac
rm -f "$cacerts"
trap - EXIT
printf 'server: %s\n' "$REGISTRATION_URL" | write_atomically "$dropin" 0600 >/dev/null
log "existing cluster found at $REGISTRATION_URL: joining it instead of initialising"
echo join
