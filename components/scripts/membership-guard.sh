# servers[0], whenever the list of servers changes, before any server is removed (Pulumi
# deletes the resources of removed servers at the end of the update, so a refusal here stops
# it first): refuses a change that takes away etcd quorum in one step. etcd needs a majority
# of its members to change membership or serve writes (etcd docs, "FAQ: Why an odd number of
# cluster members?"), and the removals run at once: of N members, the servers kept must be
# more than N/2. The members are the etcd Nodes RKE2 annotates with their member name
# (etcd.rke2.cattle.io/node-name, k3s pkg/etcd/metadata_controller.go).
# host-effect: nothing
# In: SERVERS (the configured server names, space-separated), ACTION (guard: the create, run
# when SERVERS changes, its trigger; check: any other update, e.g. a new SSH address, which
# checks nothing: the servers are the same, and on an address change RKE2 may not be
# serving yet, so a guard that needs the API would block the recovery).
if [ "$ACTION" = check ]; then
  log "servers unchanged ($SERVERS): nothing to check"
  echo "unchanged"
  exit 0
fi
if ! rke2_bin rke2 >/dev/null || [ ! -f /etc/rancher/rke2/rke2.yaml ]; then
  log "RKE2 is not installed here yet: a new cluster, no member to remove"
  echo "fresh"
  exit 0
fi
nodes=$(kubectl_local get nodes -l node-role.kubernetes.io/etcd=true \
  -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.annotations.etcd\.rke2\.cattle\.io/node-name}{"\n"}{end}') ||
  fail "cannot list the etcd nodes; refusing to change the servers without knowing the etcd members"
# This host's own member name (k3s pkg/etcd/etcd.go nameFile: <data-dir>/db/etcd/name). A
# Node that carries it is this host under its old name: servers[0] renamed, not removed.
own_member=$(cat /var/lib/rancher/rke2/server/db/etcd/name 2>/dev/null || true)
# Counted per member, not per Node: a renamed server leaves its old Node behind with the
# same member name until someone deletes it.
total=0 kept=0 leaving="" seen=" "
while IFS=$'\t' read -r name member; do
  if [ -z "$name" ] || [ -z "$member" ]; then continue; fi
  case "$seen" in *" $member "*) continue ;; esac
  seen="$seen$member "
  total=$((total + 1))
  case " $SERVERS " in
    *" $name "*) kept=$((kept + 1)) ;;
    *) if [ -n "$own_member" ] && [ "$member" = "$own_member" ]; then
         log "node $name is this host (etcd member $member) under its old name: renamed, not leaving"
         kept=$((kept + 1))
       else
         leaving="$leaving${leaving:+, }$name"
       fi ;;
  esac
done <<< "$nodes"
if [ -z "$leaving" ]; then
  log "etcd members: $total, none leaving"
  echo "members $total"
  exit 0
fi
if [ $((kept * 2)) -le "$total" ]; then
  fail "refusing to remove $leaving at once: etcd has $total members and $kept would stay, which is not a majority (quorum needs $((total / 2 + 1))). Remove fewer servers per pulumi up (one at a time is safest)"
fi
log "etcd members: $total; leaving: $leaving; $kept stay (quorum $((total / 2 + 1)))"
echo "members $total leaving $leaving"
