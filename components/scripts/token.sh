# Writes a server's join-token drop-in. Stdin: the token's password (base64) on the first
# host-effect: file if created; refused if changed(stdin); nothing
# line, then the drop-in's YAML. In: DEST, MODE.
# RKE2 encrypts its bootstrap data in etcd with the token's password; a server restarted
# with another one fails "bootstrap data already found and encrypted with different token"
# (k3s pkg/cluster/bootstrap.go). So once the cluster is initialised here (etcd data and
# server/token on disk), a different password is refused; the supported path is
# `rke2 token rotate`. Neither token is ever printed.
TOKEN_FILE=/var/lib/rancher/rke2/server/token
ETCD_DATA=/var/lib/rancher/rke2/server/db/etcd

# The password part, as k3s pkg/clientaccess/token.go parseToken reads it:
# K10<hash>::<user>:<password>, K10<user>:<password>, or a bare password.
token_password() {
  local t=$1
  case $t in
    K10*)
      t=${t#K10}
      case $t in *::*) t=${t#*::} ;; esac
      printf '%s' "${t#*:}" ;;
    *) printf '%s' "$t" ;;
  esac
}

IFS= read -r new_b64 || fail "no token on stdin"
if [ -s "$TOKEN_FILE" ] && [ -d "$ETCD_DATA" ]; then
  new=$(printf '%s' "$new_b64" | base64 -d) || fail "the token on stdin is not base64"
  old=$(token_password "$(tr -d '\n' < "$TOKEN_FILE")")
  if [ "$new" != "$old" ]; then
    fail "this cluster was initialised with another token, and RKE2 cannot start with a" \
         "different one (its bootstrap data is encrypted with the first). To change it, run" \
         "\`rke2 token rotate --token <current> --new-token <new>\` on one server, restart the" \
         "servers one at a time, then set the new token in the stack (config: token)"
  fi
fi
write_atomically "$DEST" "$MODE"
