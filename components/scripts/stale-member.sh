# servers[0], before a joining server installs: removes the etcd member a rebuilt server left
# behind. A server rebuilt under its old name joins with a new member name (k3s setName:
# <node>-<random>), and k3s `(*ETCD).join` refuses it while a member of that node name exists
# ("duplicate node name found, please use a unique name for this node"), restarting for ever.
# So when the joiner has no etcd data (stdin: rejoin-check.sh's "fresh") and its Node still
# carries an etcd member (etcd.rke2.cattle.io/node-name, k3s metadata_controller.go), the
# member is removed as RKE2 removes one (remove_etcd_member), then the Node and its
# node-password secret are deleted (the rebuilt host has a new node password).
# A Ready Node is not stale: two hosts under one name; that is refused, never removed.
# host-effect: nothing
# In: NODE (the joining server), TIMEOUT, ACTION (remove: the create, when the server is new or
# its servers[].rebuild label changed; check: any other update, which checks nothing: the
# joiner's state on stdin may be one recorded at an earlier run); stdin: "fresh" or "member".
state=$(cat)
if [ "$ACTION" = check ]; then
  log "$NODE not rebuilt since the last run: nothing to check"
  echo unchanged
  exit 0
fi
if [ "$state" != fresh ]; then
  log "$NODE holds etcd data: nothing to remove"
  echo none
  exit 0
fi
if ! rke2_bin rke2 >/dev/null || [ ! -f /etc/rancher/rke2/rke2.yaml ]; then
  log "RKE2 is not installed here yet: a new cluster, no member to remove"
  echo none
  exit 0
fi
if ! out=$(kubectl_local get node "$NODE" --ignore-not-found \
    -o 'jsonpath={.metadata.annotations.etcd\.rke2\.cattle\.io/node-name}{"\t"}{.status.conditions[?(@.type=="Ready")].status}'); then
  fail "cannot read node $NODE; refusing to let it join without knowing whether it left a member behind"
fi
member=${out%%$'\t'*}
ready=${out#*$'\t'}
if [ -z "$out" ] || [ -z "$member" ]; then
  log "$NODE has no etcd member: a new server"
  echo none
  exit 0
fi
if [ "$ready" = True ]; then
  fail "node $NODE is Ready and etcd member $member, but the host configured as $NODE has no etcd data: is another host running under that name? Refusing to remove a live member"
fi
log "$NODE was rebuilt: its old etcd member $member is still in the cluster (node not Ready)"
remove_etcd_member kubectl_local "$NODE" "$TIMEOUT" ||
  fail "RKE2 refused to remove the etcd member $member (the last voting member?)"
kubectl_local delete node "$NODE" --ignore-not-found >&2 || fail "could not delete node $NODE"
kubectl_local -n kube-system delete secret "$NODE.node-password.rke2" --ignore-not-found >&2 ||
  fail "could not delete the node-password secret of $NODE"
log "stale member $member of $NODE removed; it can join again"
echo "removed $member"
