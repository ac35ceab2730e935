# Rotates this server's leaf certificates (not the CAs): RKE2 requires the service
# stopped. Runs once per new cluster.certificateRotation label. In: TIMEOUT, LABEL.
log "rotating leaf certificates (label $LABEL)"
systemctl stop rke2-server
"$(rke2_bin rke2)" certificate rotate >&2 || { start_unit rke2-server start "$TIMEOUT"; fail "rke2 certificate rotate failed; service restarted with the old certificates"; }
start_unit rke2-server start "$TIMEOUT"
wait_api_ready "$TIMEOUT"
echo "rotated $LABEL"
