# servers[0] of an HA cluster: never start a second cluster. RKE2 makes the first server
# initialise etcd whenever it has no etcd data, so a rebuilt first node would silently
# found a new cluster. When this host has no etcd data but a cluster already answers at
# the registration address, join it instead (a drop-in with `server:`).
# In: REGISTRATION_URL.
data=/var/lib/rancher/rke2/server/db/etcd
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
    got=$(sha256sum "$cacerts" | awk '{ print $1 }')
    [ "$got" = "$want" ] || fail "the cluster at $REGISTRATION_URL has a different CA (sha256 $got) than the token pins ($want)"
    ;;
  *) log "token has no CA hash (not K10 form): RKE2 will verify the join itself" ;;
esac
rm -f "$cacerts"
trap - EXIT
printf 'server: %s\n' "$REGISTRATION_URL" | write_atomically "$dropin" 0600 >/dev/null
log "existing cluster found at $REGISTRATION_URL: joining it instead of initialising"
echo join
