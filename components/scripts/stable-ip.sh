# Mobile mode: holds STABLE_IP on this host whatever network it is on, at boot and
# host-effect: file if changed(STABLE_IP) or changed(METHOD); nothing
# before rke2 starts, so etcd's member address and the advertise address never change.
# In: STABLE_IP, METHOD (auto|dummy|loopback).
helper=/usr/local/sbin/rke2-stable-ip
unit=/etc/systemd/system/rke2-stable-ip.service
dropin=/etc/systemd/system/rke2-server.service.d/10-rke2-stable-ip.conf
case $STABLE_IP in *:*) plen=128 ;; *) plen=32 ;; esac

# A POSIX sh single-quoted word: the helper gets its values as inert assignments.
sh_quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# The helper's body is a quoted heredoc (nothing expands in it); its two values come first,
# each quoted above.
{
  printf '#!/bin/sh\n# Written by rke2-rancher: keeps a stable node address on this host (mobile mode).\n'
  printf 'addr=%s\n' "$(sh_quote "$STABLE_IP/$plen")"
  printf 'method=%s\n' "$(sh_quote "$METHOD")"
  cat <<'HELPER'
set -eu
if [ "$method" != loopback ]; then
  if ip link show rke2-stable >/dev/null 2>&1 || ip link add rke2-stable type dummy 2>/dev/null; then
    ip link set rke2-stable up
    ip addr show dev rke2-stable | grep -qF " $addr " || ip addr add "$addr" dev rke2-stable
    exit 0
  fi
  [ "$method" = dummy ] && { echo "dummy interfaces unavailable on this kernel" >&2; exit 1; }
fi
ip addr show dev lo | grep -qF " $addr " || ip addr add "$addr" dev lo
HELPER
} | write_atomically "$helper" 0755 >/dev/null

write_atomically "$unit" 0644 >/dev/null <<'UNIT'
[Unit]
Description=Stable node address for RKE2 (rke2-rancher mobile mode)
Before=rke2-server.service
After=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/rke2-stable-ip

[Install]
WantedBy=multi-user.target
UNIT

write_atomically "$dropin" 0644 >/dev/null <<'DROPIN'
[Unit]
Requires=rke2-stable-ip.service
After=rke2-stable-ip.service
DROPIN

systemctl daemon-reload
systemctl enable rke2-stable-ip.service >/dev/null 2>&1
systemctl start rke2-stable-ip.service || fail "could not hold $STABLE_IP (method $METHOD)"
ip -o addr show | grep -qF " $STABLE_IP/$plen " || fail "$STABLE_IP is not on any interface after start"
log "stable address $STABLE_IP is held"
echo "$STABLE_IP"
