# Removes RKE2 from the host on `pulumi destroy`.
# In: ACTION (register: the create step, changes nothing; uninstall: the delete step),
# RETAIN (1: leave the host untouched, cluster.retainOnDestroy).
if [ "$ACTION" = register ]; then
  if [ "$RETAIN" = 1 ]; then log "destroy will leave RKE2 on this host"; else log "destroy will run rke2-uninstall.sh"; fi
  exit 0
fi
if [ "$RETAIN" = 1 ]; then
  log "cluster.retainOnDestroy is set: leaving RKE2 on this host"
  exit 0
fi
if script=$(rke2_bin rke2-uninstall.sh); then
  log "running $script"
  "$script" >&2
else
  log "rke2-uninstall.sh not found: nothing to uninstall"
fi
if [ -f /etc/systemd/system/rke2-stable-ip.service ]; then
  systemctl disable --now rke2-stable-ip.service >/dev/null 2>&1 || true
  rm -f /etc/systemd/system/rke2-stable-ip.service /usr/local/sbin/rke2-stable-ip
  rm -rf /etc/systemd/system/rke2-server.service.d/10-rke2-stable-ip.conf
  systemctl daemon-reload || true
fi
log "uninstalled"
