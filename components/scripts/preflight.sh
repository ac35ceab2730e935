# Checks a host can run RKE2 before anything is changed on it.
# host-effect: nothing
# In: ROLE (server|agent), MIN_DISK_MB, CA_MODE (generated|rke2 on servers).
problems=""
note() { problems="$problems
  - $*"; log "check failed: $*"; }

[ "$(id -u)" = 0 ] || note "root: running as uid $(id -u); use root or passwordless sudo"
command -v systemctl >/dev/null 2>&1 || note "systemd: systemctl not found"
if [ -r /proc/swaps ] && [ "$(awk 'NR > 1' /proc/swaps | wc -l)" -gt 0 ]; then
  note "swap: swap is on (kubelet refuses it); run swapoff -a and remove it from /etc/fstab"
fi
# A port is RKE2's own when rke2-server is active or still activating (a server whose node
# IP changed retries with its listeners open and never becomes active: k3s
# pkg/cluster/managed.go), or when the listening process runs in rke2-server.service's
# cgroup, or in a pod cgroup while RKE2 is installed (the unit has KillMode=process, so the
# kube-apiserver static pod keeps 6443 when the unit is stopped:
# rancher/rke2 bundle/lib/systemd/system/rke2-server.service).
port_is_rke2s() {  # port
  case $(systemctl is-active rke2-server 2>/dev/null || true) in
    active|activating|reloading|deactivating) return 0 ;;
  esac
  for pid in $(ss -Htlnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    grep -q 'rke2-server\.service' "/proc/$pid/cgroup" 2>/dev/null && return 0
    if rke2_bin rke2 >/dev/null && grep -q 'kubepods' "/proc/$pid/cgroup" 2>/dev/null; then return 0; fi
  done
  return 1
}
# One RKE2 role per host (rancher/rke2 bundle/lib/systemd/system/rke2-server.service has
# Conflicts=rke2-agent.service): the other role's unit enabled or running means the host is
# still a node of the other kind.
other=rke2-agent other_list=agents this_list=servers
if [ "$ROLE" = agent ]; then other=rke2-server other_list=servers this_list=agents; fi
other_state=$(systemctl is-active "$other" 2>/dev/null || true)
if systemctl is-enabled --quiet "$other" 2>/dev/null ||
   case $other_state in active|activating|reloading) true ;; *) false ;; esac; then
  note "role: $other is enabled or running on this host, which cannot be an RKE2 server and an agent at once; to move it, remove it from $other_list first (pulumi up uninstalls RKE2 there), then add it to $this_list"
fi
if [ "$ROLE" = server ]; then
  for port in 6443 9345; do
    if ss -Htln "sport = :$port" 2>/dev/null | grep -q .; then
      if port_is_rke2s "$port"; then
        log "port $port in use by rke2-server (ours)"
      else
        note "port $port: in use by another program: $(ss -Htlnp "sport = :$port" | head -n 1)"
      fi
    fi
  done
fi
if [ "$CA_MODE" = rke2 ] && [ -f /var/lib/rancher/rke2/server/tls/.rke2-rancher-ca ]; then
  note "cluster.ca: this cluster's CA is owned by the stack (cluster.ca: generated); switching to rke2 would orphan it: set cluster.ca back to generated"
fi
avail=$(df -Pm /var/lib 2>/dev/null | awk 'NR == 2 { print $4 }')
if [ -n "$avail" ] && [ "$avail" -lt "$MIN_DISK_MB" ]; then
  note "disk: ${avail} MB free under /var/lib, at least ${MIN_DISK_MB} MB needed"
fi
if [ -n "$problems" ]; then
  fail "preflight on $(hostname):$problems"
fi
log "preflight passed"
echo ok
