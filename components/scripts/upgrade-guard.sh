# servers[0], once per new cluster.version (its trigger), before any host changes: refuses a
# downgrade, a change of major version and a skipped minor version (docs.rke2.io
# upgrades/manual_upgrade: the Kubernetes version skew policy applies, never skip a minor
# version), and a cluster that is not healthy (a Node not Ready, an etcd check of the API
# server's /readyz not ok); then takes an etcd snapshot pre-upgrade-<from>-to-<to> ('+' as '-').
# A host without RKE2 (a new stack) passes: there is nothing to upgrade.
# Not checked: a pending etcd learner (RKE2 ships no etcdctl and the API server does not
# report learners); a learner shows as a Node that is not Ready yet, which is refused.
# host-effect: nothing if ACTION=check; file if created; nothing
# In: TARGET (the new cluster.version), ACTION (guard: the create; check: any other update,
# which only logs the versions).
version_parts() {  # vX.Y.Z+rke2rN -> "X Y Z N" (fails on anything else)
  [[ $1 =~ ^v(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\+rke2r([1-9][0-9]{0,3})$ ]] || return 1
  printf '%s %s %s %s\n' "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}"
}

if ! bin=$(rke2_bin rke2); then
  log "RKE2 is not installed on this host: a new cluster, nothing to guard"
  echo "fresh $TARGET"
  exit 0
fi
from=$("$bin" --version 2>/dev/null | awk 'NR == 1 { print $3 }')
if [ "$ACTION" = check ]; then
  log "installed $from, cluster.version $TARGET (update: checks nothing)"
  echo "checked $TARGET"
  exit 0
fi
if [ "$from" = "$TARGET" ]; then
  log "RKE2 $TARGET is already installed here: nothing to guard"
  echo "current $TARGET"
  exit 0
fi
fparts=$(version_parts "$from") || fail "cannot read the installed RKE2 version (rke2 --version says '$from')"
tparts=$(version_parts "$TARGET") || fail "cluster.version $TARGET is not a vX.Y.Z+rke2rN release"
read -r fmaj fmin fpatch frev <<< "$fparts"
read -r tmaj tmin tpatch trev <<< "$tparts"
f=("$fmaj" "$fmin" "$fpatch" "$frev")
t=("$tmaj" "$tmin" "$tpatch" "$trev")
older=0
for i in 0 1 2 3; do
  if [ "${t[$i]}" -lt "${f[$i]}" ]; then older=1; break; fi
  if [ "${t[$i]}" -gt "${f[$i]}" ]; then break; fi
done
if [ "$older" = 1 ]; then
  fail "refusing to downgrade RKE2 from $from to $TARGET: RKE2 upgrades only; to go back, restore an etcd snapshot taken before the upgrade (set cluster.version back to $from)"
fi
if [ "$tmaj" != "$fmaj" ]; then
  fail "refusing to change the major version from $from to $TARGET"
fi
if [ "$tmin" -gt $((fmin + 1)) ]; then
  fail "refusing to upgrade from $from to $TARGET: it skips minor version(s) after v$fmaj.$fmin (the Kubernetes version skew policy allows one minor version at a time); upgrade to a v$fmaj.$((fmin + 1)) release first"
fi
log "upgrade from $from to $TARGET: allowed (patch, revision or the next minor version)"

# Health: the API server answers, etcd is ok in its /readyz checks, every Node is Ready.
if ! readyz=$(kubectl_local get --raw '/readyz?verbose' 2>&1); then
  failed=$(printf '%s\n' "$readyz" | grep -o '\[-\][A-Za-z0-9_/-]* failed' | tr '\n' ' ' || true)
  fail "cluster not healthy, refusing to upgrade from $from to $TARGET: /readyz is not ok (${failed:-the API server does not answer})"
fi
if ! printf '%s\n' "$readyz" | grep -q '^\[+\]etcd ok'; then
  fail "cluster not healthy, refusing to upgrade from $from to $TARGET: /readyz reports no passing etcd check"
fi
# STATUS column: Ready, NotReady or Unknown, with ",SchedulingDisabled" when cordoned.
nodes=$(kubectl_local get nodes --no-headers) ||
  fail "cluster not healthy, refusing to upgrade from $from to $TARGET: cannot list the nodes"
[ -n "$nodes" ] || fail "cluster not healthy, refusing to upgrade from $from to $TARGET: no nodes registered"
not_ready=$(printf '%s\n' "$nodes" | awk 'NF && $2 != "Ready" && $2 !~ /^Ready,/ { printf "%s%s", sep, $1; sep = ", " }')
if [ -n "$not_ready" ]; then
  fail "cluster not healthy, refusing to upgrade from $from to $TARGET: node(s) not Ready: $not_ready"
fi
log "cluster healthy: etcd ok in /readyz, $(printf '%s\n' "$nodes" | awk 'NF' | wc -l) node(s) Ready"

name="pre-upgrade-$from-to-$TARGET"
name=${name//+/-}
log "etcd snapshot $name"
"$bin" etcd-snapshot save --name "$name" >&2 || fail "etcd snapshot $name failed: nothing was upgraded"
echo "snapshot $name"
