# servers[0]: an on-demand etcd snapshot (cluster.snapshot), and the list of the snapshots the
# stack took that are still on this server. `rke2 etcd-snapshot save --name N` writes
# <N>-<node name>-<unix time> into the snapshot directory (docs.rke2.io/backup_restore;
# k3s pkg/etcd/snapshot.go). The stack's own snapshots (this step's and the upgrade guard's
# pre-upgrade ones) are recorded in a ledger next to them, so the list is what the stack took.
# host-effect: file if ACTION=save; nothing
# In: NAME (cluster.snapshot), SNAPSHOT_DIR, ACTION (save: the create, a new label; list:
# any other update, lists only).
ledger="$SNAPSHOT_DIR/.rke2-rancher-taken"

if [ "$ACTION" = save ]; then
  bin=$(rke2_bin rke2) || fail "RKE2 is not installed here: nothing to snapshot"
  mkdir -p "$SNAPSHOT_DIR"
  marker=$(mktemp "$SNAPSHOT_DIR/.rke2-rancher-before.XXXXXX")
  trap 'rm -f "$marker"' EXIT
  sleep 1  # the new file's mtime is after the marker's
  log "rke2 etcd-snapshot save --name $NAME"
  "$bin" etcd-snapshot save --name "$NAME" >&2 || fail "rke2 etcd-snapshot save --name $NAME failed"
  taken=$(find "$SNAPSHOT_DIR" -maxdepth 1 -type f -name "$NAME-*" -newer "$marker" -printf '%f\n' | sort | tail -n 1)
  [ -n "$taken" ] || fail "rke2 etcd-snapshot save succeeded but no $NAME-* file appeared in $SNAPSHOT_DIR"
  printf '%s\n' "$taken" >> "$ledger"
  log "snapshot $taken saved in $SNAPSHOT_DIR"
fi

# The ledger's entries whose file still exists (retention may have pruned older ones).
if [ -f "$ledger" ]; then
  while IFS= read -r f; do
    if [ -n "$f" ] && [ -f "$SNAPSHOT_DIR/$f" ]; then printf '%s\n' "$f"; fi
  done < "$ledger"
fi
