#!/bin/sh
# rke2-standin's rke2-uninstall.sh (lab stand-in, NOT RKE2's). Removes what RKE2's
# uninstall script removes, in the same order.
set -ex

log() {
    echo "[$(date +'%Y-%m-%d %H:%M:%S')] $*"
}

if [ ! "$(id -u)" -eq 0 ]; then
    log "ERROR: $(basename "$0"): must be run as root" >&2
    exit 1
fi

RKE2_DATA_DIR=${RKE2_DATA_DIR:-/var/lib/rancher/rke2}
INSTALL_RKE2_ROOT=${INSTALL_RKE2_ROOT:-/usr/local}

log "Running killall script"
_killall="$(dirname "$0")/rke2-killall.sh"
if [ -e "${_killall}" ]; then
    "${_killall}"
fi

log "Disabling rke2 services"
systemctl disable rke2-server || true
systemctl disable rke2-agent || true
systemctl reset-failed rke2-server || true
systemctl reset-failed rke2-agent || true
systemctl daemon-reload

log "Removing rke2 files"
find "${INSTALL_RKE2_ROOT}/lib/systemd/system" -name 'rke2-*.service' -type f -delete
find "${INSTALL_RKE2_ROOT}/lib/systemd/system" -name 'rke2-*.env' -type f -delete
find /etc/systemd/system -name 'rke2-*.service' -type f -delete
rm -f "${INSTALL_RKE2_ROOT}/bin/rke2"
rm -f "${INSTALL_RKE2_ROOT}/bin/rke2-killall.sh"
rm -rf "${INSTALL_RKE2_ROOT}/share/rke2" "${INSTALL_RKE2_ROOT}/share/rke2-standin"
rm -rf /etc/rancher/rke2
rm -rf /etc/rancher/node
rm -d /etc/rancher || true
rm -rf /etc/cni
rm -rf /opt/cni/bin
rm -rf /var/lib/kubelet || true
rm -rf "${RKE2_DATA_DIR}"
rm -d /var/lib/rancher || true

log "Removing uninstall script"
rm -f "${INSTALL_RKE2_ROOT}/bin/rke2-uninstall.sh"
log "Cleanup completed successfully"
