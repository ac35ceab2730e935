# servers[0], whenever the list of servers changes, before any server is removed (Pulumi
# deletes the resources of removed servers at the end of the update, so a refusal here stops
# it first): refuses a change that takes away etcd quorum in one step. etcd needs a majority
# of its members to change membership or serve writes (etcd docs, "FAQ: Why an odd number of
# cluster members?"), and the removals run at once: of N members, the servers kept must be
# more than N/2. The members are the etcd Nodes RKE2 annotates with their member name
# (etcd.rke2.cattle.io/node-name, k3s pkg/etcd/metadata_controller.go).
# host-effect: nothing
# In: SERVERS (the configured server names, space-separated).
if ! rke2_bin rke2 >/dev/null || [ ! -f /etc/rancher/rke2/rke2.yaml ]; then
  log "RKE2 is not installed here yet: a new cluster, no member to remove"
  echo "fresh"
  exit 0
fi
nodes=$(kubectl_local get nodes -l node-role.kubernetes.io/etcd=true \
  -o 'jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.annotations.etcd\.rke2\.cattle\.io/node-name}{"\n"}{end}') ||
  fail "cannot list the etcd nodes; refusing to change the servers without knowing the etcd members"
total=0 kept=0 leaving=""
while IFS=$'\t' read -r name member; do
  if [ -z "$name" ] || [ -z "$member" ]; then continue; fi
  total=$((total + 1))
  case " $SERVERS " in
    *" $name "*) kept=$((kept + 1)) ;;
    *) leaving="$leaving${leaving:+, }$name" ;;
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
