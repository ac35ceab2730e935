# A joining server (servers[1:]), before its install: says whether this host already holds
# etcd data (k3s pkg/etcd/etcd.go IsInitialized: <data-dir>/db/etcd/member/wal exists). Its
# output is the stdin of `<server>-stale-member` on servers[0]: a host without etcd data
# whose name is still an etcd member is a rebuilt server.
# host-effect: nothing
if [ -d /var/lib/rancher/rke2/server/db/etcd/member/wal ]; then
  log "etcd data present: this server is a member already"
  echo member
else
  log "no etcd data here: this server joins as a new member"
  echo fresh
fi
