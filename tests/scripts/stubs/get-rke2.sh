#!/bin/sh
# Stand-in for https://get.rke2.io, served to install.sh from a file:// URL. Honours
# INSTALL_RKE2_VERSION, INSTALL_RKE2_TYPE and INSTALL_RKE2_ARTIFACT_PATH like the real one;
# /stubstate/installer-version overrides the version it installs (a broken mirror).
set -eu
echo "installer INSTALL_RKE2_VERSION=${INSTALL_RKE2_VERSION:-} INSTALL_RKE2_TYPE=${INSTALL_RKE2_TYPE:-} INSTALL_RKE2_ARTIFACT_PATH=${INSTALL_RKE2_ARTIFACT_PATH:-}" >> /stubstate/calls.log
version=${INSTALL_RKE2_VERSION:?the stub installer needs INSTALL_RKE2_VERSION}
if [ -f /stubstate/installer-version ]; then version=$(cat /stubstate/installer-version); fi
if [ -n "${INSTALL_RKE2_ARTIFACT_PATH:-}" ] && [ ! -f "$INSTALL_RKE2_ARTIFACT_PATH/rke2.linux-amd64.tar.gz" ]; then
  echo "[ERROR]  no rke2.linux-amd64.tar.gz in $INSTALL_RKE2_ARTIFACT_PATH" >&2
  exit 1
fi
echo "[INFO]  installing rke2 $version (stub)"
mkdir -p /usr/local/bin /usr/local/lib/systemd/system
cat > /usr/local/bin/rke2 <<RKE2
#!/bin/sh
echo "rke2 \$*" >> /stubstate/calls.log
case "\${1:-}" in
  --version) echo "rke2 version $version (stub)"; echo "go version go1.24.0 (stub)" ;;
  server)
    if [ "\${2:-}" = --cluster-reset ]; then
      touch /stubstate/cluster-reset-done
      echo "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now." >&2
    fi ;;
  etcd-snapshot)
    # save --name NAME: a file NAME-<node>-<unix time> where RKE2 keeps local snapshots.
    if [ -f /stubstate/etcd-snapshot-fails ]; then echo "etcd snapshot failed (stub)" >&2; exit 1; fi
    mkdir -p /var/lib/rancher/rke2/server/db/snapshots
    touch "/var/lib/rancher/rke2/server/db/snapshots/\${4:-on-demand}-\$(hostname)-\$(date +%s)" ;;
esac
RKE2
cat > /usr/local/bin/rke2-uninstall.sh <<'UNINSTALL'
#!/bin/sh
echo "rke2-uninstall.sh $*" >> /stubstate/calls.log
rm -rf /etc/rancher/rke2 /var/lib/rancher/rke2 /var/lib/kubelet
rm -f /usr/local/bin/rke2 /usr/local/bin/rke2-killall.sh /usr/local/lib/systemd/system/rke2-*.service
rm -f /usr/local/bin/rke2-uninstall.sh
UNINSTALL
printf '#!/bin/sh\necho "rke2-killall.sh" >> /stubstate/calls.log\n' > /usr/local/bin/rke2-killall.sh
for t in server agent; do
  printf '[Unit]\nDescription=Rancher Kubernetes Engine v2 (%s)\n[Service]\nType=notify\nExecStart=/usr/local/bin/rke2 %s\n' "$t" "$t" \
    > "/usr/local/lib/systemd/system/rke2-$t.service"
done
chmod 0755 /usr/local/bin/rke2 /usr/local/bin/rke2-uninstall.sh /usr/local/bin/rke2-killall.sh
chmod 0644 /usr/local/lib/systemd/system/rke2-*.service
systemctl daemon-reload
