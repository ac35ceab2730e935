# Removes RKE2 from the host on `pulumi destroy` (or when the node leaves the stack).
# host-effect: nothing if handed-over; uninstall if ACTION=uninstall and RETAIN=0; nothing
# In: ACTION (register: the create step; uninstall: the delete step),
# RETAIN (1: leave the host untouched, cluster.retainOnDestroy), NODE (the node name),
# ROLE (server|agent); servers of an HA cluster also LEAVE=1, API (the API server through the
# load balancer) and TIMEOUT.
#
# A server leaving an HA cluster first leaves etcd, as RKE2's managed etcd member controller
# offers it (k3s pkg/etcd/member_controller.go `sync`): drained, its Node annotated
# etcd.rke2.cattle.io/remove=true, RKE2 removes the member and marks the Node
# etcd.rke2.cattle.io/removed-node-name; then the Node and its node-password secret are
# deleted and RKE2 uninstalled. Uninstalling without that would leave a dead member. The
# steps go through the load balancer: once its member is gone, this server's own API stops.
#
# The create step writes a marker naming the node and role that manage this host. When a
# node is renamed, or a host moves between servers and agents, the new name's step is
# created first and the old name's step is deleted at the end of the same update: its
# delete finds the marker naming another node or role and leaves RKE2 installed.
marker=/etc/rancher/rke2/rke2-rancher-node
me="$NODE $ROLE"
if [ "$ACTION" = register ]; then
  other=rke2-agent
  [ "$ROLE" = server ] || other=rke2-server
  if systemctl is-enabled --quiet "$other" 2>/dev/null; then
    # preflight refuses this host next; the marker stays with the role the host has.
    log "$other is enabled here: not marking this host as $me"
    exit 0
  fi
  printf '%s\n' "$me" | write_atomically "$marker" 0644 >/dev/null
  if [ "$RETAIN" = 1 ]; then log "destroy will leave RKE2 on this host"; else log "destroy will run rke2-uninstall.sh"; fi
  exit 0
fi
if [ -f "$marker" ] && [ "$(cat "$marker")" != "$me" ]; then
  log "this host is now managed as '$(cat "$marker")', not '$me': leaving RKE2 installed"
  exit 0
fi
if [ "$RETAIN" = 1 ]; then
  log "cluster.retainOnDestroy is set: leaving RKE2 on this host"
  exit 0
fi

leave_etcd() {
  k() { /var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml --server "$API" --request-timeout=10s "$@"; }
  deadline=$(( $(date +%s) + TIMEOUT ))
  until k get node "$NODE" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "node $NODE not found through $API within ${TIMEOUT}s (the cluster is gone, or never had it): uninstalling"
      return 0
    fi
    sleep 3
  done
  log "cordon and drain $NODE"
  k cordon "$NODE" >&2 || true
  k drain "$NODE" --ignore-daemonsets --delete-emptydir-data --force --timeout="${TIMEOUT}s" >&2 ||
    log "drain did not finish; going on with the removal"
  remove_etcd_member k "$NODE" "$TIMEOUT" ||
    log "RKE2 refused to remove the etcd member of $NODE (the last voting member): uninstalling"
  k delete node "$NODE" --ignore-not-found >&2 || log "could not delete node $NODE"
  k -n kube-system delete secret "$NODE.node-password.rke2" --ignore-not-found >&2 || true
  log "$NODE left the cluster"
}

if [ "$ROLE" = server ] && [ "${LEAVE:-0}" = 1 ] && [ -f /etc/rancher/rke2/rke2.yaml ]; then
  leave_etcd
fi
if script=$(rke2_bin rke2-uninstall.sh); then
  log "running $script"
  "$script" >&2
else
  log "rke2-uninstall.sh not found: nothing to uninstall"
fi
if [ -f /etc/systemd/system/rke2-dns-follow.path ]; then  # mobile mode: dns-follow.sh
  systemctl disable --now rke2-dns-follow.path >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/rke2-dns-follow.path /etc/systemd/system/rke2-dns-follow.service \
    /usr/local/sbin/rke2-dns-follow /var/lib/rke2-rancher/dns-follow.resolvers
fi
if [ -f /etc/systemd/system/rke2-stable-ip.service ]; then
  systemctl disable --now rke2-stable-ip.service >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/rke2-stable-ip.service /usr/local/sbin/rke2-stable-ip
  rm -rf /etc/systemd/system/rke2-server.service.d/10-rke2-stable-ip.conf
  systemctl daemon-reload || true
fi
rm -f "$marker"
log "uninstalled"
