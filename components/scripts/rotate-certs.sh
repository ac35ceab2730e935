# Rotates this server's leaf certificates (not the CAs): RKE2 requires the service
# host-effect: certs if ACTION=rotate; nothing
# stopped. In: TIMEOUT, LABEL, ACTION.
#   rotate  the create command: runs once per new cluster.certificateRotation label (a new
#           label replaces the step);
#   check   the update command: any other change (address, ssh user, timeout, a script edit)
#           only re-checks that the API answers; it never stops the service.
if [ "$ACTION" = check ]; then
  wait_api_ready "$TIMEOUT"
  log "certificates were rotated for label $LABEL; nothing to do"
  echo "rotated $LABEL"
  exit 0
fi
log "rotating leaf certificates (label $LABEL)"
systemctl stop rke2-server
"$(rke2_bin rke2)" certificate rotate >&2 || { start_unit rke2-server start "$TIMEOUT"; fail "rke2 certificate rotate failed; service restarted with the old certificates"; }
start_unit rke2-server start "$TIMEOUT"
wait_api_ready "$TIMEOUT"
echo "rotated $LABEL"
