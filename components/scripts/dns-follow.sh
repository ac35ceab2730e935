# Mobile mode: CoreDNS pods forward to the resolvers copied into them at creation, so after a
# host-effect: file if created; nothing
# network move in-cluster DNS still asks the old network's resolvers. This installs a systemd
# path unit that restarts the CoreDNS deployment whenever the host's resolvers change
# (/etc/resolv.conf, or systemd-resolved's upstream list, which the kubelet uses when
# /etc/resolv.conf points at the 127.0.0.53 stub). No values.
helper=/usr/local/sbin/rke2-dns-follow
service=/etc/systemd/system/rke2-dns-follow.service
path_unit=/etc/systemd/system/rke2-dns-follow.path

write_atomically "$helper" 0755 >/dev/null <<'HELPER'
#!/bin/sh
# Written by rke2-rancher (mobile mode): recreates the CoreDNS pods so that they forward to
# the resolvers of the network this host is on now, only when the resolvers really changed
# (DHCP renewals rewrite resolv.conf with the same ones). Retries while the API is not up
# (the move also restarts rke2-server). `--seed` records the current resolvers only.
kubectl=/var/lib/rancher/rke2/bin/kubectl
kubeconfig=/etc/rancher/rke2/rke2.yaml
state=/var/lib/rke2-rancher/dns-follow.resolvers
current=$(cat /etc/resolv.conf /run/systemd/resolve/resolv.conf 2>/dev/null | grep '^nameserver' | sort -u)
mkdir -p "${state%/*}"
if [ "${1:-}" = --seed ]; then printf '%s\n' "$current" > "$state"; exit 0; fi
if [ -f "$state" ] && [ "$(cat "$state")" = "$current" ]; then exit 0; fi
tries=60
while [ "$tries" -gt 0 ]; do
  if [ -x "$kubectl" ] && [ -f "$kubeconfig" ] &&
     "$kubectl" --kubeconfig "$kubeconfig" -n kube-system rollout restart deployment rke2-coredns-rke2-coredns; then
    printf '%s\n' "$current" > "$state"
    exit 0
  fi
  tries=$((tries - 1))
  sleep 5
done
echo "rke2-dns-follow: could not restart CoreDNS" >&2
exit 1
HELPER

write_atomically "$service" 0644 >/dev/null <<'UNIT'
[Unit]
Description=Restart CoreDNS after the host's resolvers changed (rke2-rancher mobile mode)
After=rke2-server.service

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/rke2-dns-follow
UNIT

write_atomically "$path_unit" 0644 >/dev/null <<'UNIT'
[Unit]
Description=Watch the host's resolvers for rke2-dns-follow (rke2-rancher mobile mode)

[Path]
PathChanged=/etc/resolv.conf
PathChanged=/run/systemd/resolve/resolv.conf
Unit=rke2-dns-follow.service

[Install]
WantedBy=multi-user.target
UNIT

# CoreDNS was created with today's resolvers: only a later change restarts it.
[ -f /var/lib/rke2-rancher/dns-follow.resolvers ] || "$helper" --seed
systemctl daemon-reload
systemctl enable rke2-dns-follow.path >/dev/null 2>&1
systemctl start rke2-dns-follow.path || fail "could not start rke2-dns-follow.path"
log "CoreDNS will be restarted whenever the host's resolvers change"
echo "watching"
