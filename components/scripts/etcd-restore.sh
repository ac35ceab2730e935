# cluster.restore: put etcd back to a snapshot, the way docs.rke2.io/backup_restore
# ("Restoring a Snapshot to Existing Nodes") says, one action per step:
#   check    servers[0]: the snapshot exists (nothing has stopped yet)
#   stop     every other server: systemctl stop rke2-server
#   restore  servers[0]: stop, `rke2 server --cluster-reset --cluster-reset-restore-path=<file>`
#            (RKE2 moves the old data to server/db/etcd-old-<date> and starts etcd from the
#            snapshot as a one-member cluster), then start and wait for /readyz
#   rejoin   every other server, one at a time: move server/db aside (the docs remove it),
#            start, wait until active: it joins the restored cluster as a new member
# host-effect: nothing if ACTION=check or ACTION=noop; restore if ACTION=restore or ACTION=rejoin; restart
# In: ACTION, SNAPSHOT (a file name in SNAPSHOT_DIR or an absolute path), SNAPSHOT_DIR, TIMEOUT,
# S3 (1 when cluster.etcdSnapshots.s3 puts an S3 target in config.yaml: the restore passes
# --etcd-s3=false, or RKE2 would look for the file in the bucket, docs.rke2.io backup_restore).
if [ "$ACTION" = noop ]; then
  log "cluster.restore $SNAPSHOT: done before (an update runs nothing)"
  exit 0
fi
case $SNAPSHOT in
  /*) path=$SNAPSHOT ;;
  *) path="$SNAPSHOT_DIR/$SNAPSHOT" ;;
esac
bin=$(rke2_bin rke2) || fail "RKE2 is not installed on this host: nothing to restore"

case $ACTION in
  check)
    if [ ! -f "$path" ]; then
      have=$(find "$SNAPSHOT_DIR" -maxdepth 1 -type f ! -name '.*' -printf '%f\n' 2>/dev/null | sort | tail -n 5 | tr '\n' ' ')
      fail "snapshot $path not found on this server, nothing was stopped (newest here: ${have:-none}); set cluster.restore to one of them (the etcdSnapshots output lists the stack's)"
    fi
    log "snapshot $path found ($(stat -c %s "$path") bytes): the restore may go on"
    echo "found $path"
    ;;
  stop)
    log "stopping rke2-server for the restore"
    systemctl stop rke2-server
    echo stopped
    ;;
  restore)
    [ -f "$path" ] || fail "snapshot $path vanished"
    s3_off=
    if [ "${S3:-0}" = 1 ]; then s3_off=--etcd-s3=false; fi
    log "stopping rke2-server, then rke2 server --cluster-reset --cluster-reset-restore-path=$path${s3_off:+ $s3_off}"
    systemctl stop rke2-server
    # A reset leaves server/db/reset-flag, which must be gone before another reset or
    # restore (docs.rke2.io/backup_restore); RKE2 removes it at a normal start.
    rm -f /var/lib/rancher/rke2/server/db/reset-flag
    timeout "$TIMEOUT" "$bin" server --cluster-reset --cluster-reset-restore-path="$path" ${s3_off:+"$s3_off"} >&2 ||
      fail "rke2 server --cluster-reset --cluster-reset-restore-path=$path${s3_off:+ $s3_off} failed (see above); the other servers are stopped"
    start_unit rke2-server start "$TIMEOUT"
    wait_api_ready "$TIMEOUT"
    echo "restored $path"
    ;;
  rejoin)
    db=/var/lib/rancher/rke2/server/db
    if [ -d "$db" ]; then
      aside="$db.before-restore-$(date +%Y%m%dT%H%M%S)"
      log "moving $db aside to $aside: this server rejoins the restored cluster as a new member"
      systemctl stop rke2-server
      mv "$db" "$aside"
    fi
    start_unit rke2-server start "$TIMEOUT"
    echo rejoined
    ;;
  *) fail "unknown ACTION $ACTION" ;;
esac
