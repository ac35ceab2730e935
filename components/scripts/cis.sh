# cluster.profile: cis. ACTION=check (before the install, changes nothing): can this host run
# the profile? ACTION=apply (after the install): the etcd user and group on servers, and the
# kernel parameters file the installed release ships, placed in SYSCTL_DEST and applied.
# host-effect: nothing if ACTION=check; file if created; nothing
# In: ACTION (check|apply), ROLE (server|agent), SYSCTL_DEST, RKE2_VERSION (apply only).
# RKE2 refuses to start with profile: cis unless these kernel parameters hold (rancher/rke2
# pkg/cli/cmds/profile_linux.go validateKernelReqs, on servers and agents) and, on servers,
# an `etcd` user and group exist (validateETCDReqs); the parameters are the release's
# share/rke2/rke2-cis-sysctl.conf (docs.rke2.io security/hardening_guide).
PARAMS="vm.panic_on_oom vm.overcommit_memory kernel.panic kernel.panic_on_oops"

check() {
  problems=""
  note() { problems="$problems
  - $*"; log "check failed: $*"; }
  if ! command -v sysctl >/dev/null 2>&1; then
    note "sysctl: not installed (procps), needed to apply the CIS kernel parameters"
  else
    for p in $PARAMS; do
      if ! cur=$(sysctl -n "$p" 2>/dev/null); then
        note "kernel parameter $p: cannot be read"
      elif ! sysctl -w "$p=$cur" >/dev/null 2>&1; then
        # Writing the current value back changes nothing; it fails where /proc/sys is
        # read-only (a container without its own kernel settings).
        note "kernel parameter $p: cannot be set here (read-only /proc/sys: a container?); the CIS profile needs a host that owns its kernel parameters"
      fi
    done
  fi
  if [ "$ROLE" = server ]; then
    if ! getent group etcd >/dev/null 2>&1 && ! command -v groupadd >/dev/null 2>&1; then
      note "etcd group: missing and groupadd is not installed"
    fi
    if ! getent passwd etcd >/dev/null 2>&1 && ! command -v useradd >/dev/null 2>&1; then
      note "etcd user: missing and useradd is not installed"
    fi
  fi
  if [ -n "$problems" ]; then
    fail "the CIS profile (cluster.profile: cis) cannot run on $(hostname):$problems"
  fi
  log "CIS profile checks passed"
}

apply() {
  check
  src=""
  for d in /usr/local/share/rke2 /opt/rke2/share/rke2 /usr/share/rke2; do
    if [ -f "$d/rke2-cis-sysctl.conf" ]; then src=$d/rke2-cis-sysctl.conf; break; fi
  done
  [ -n "$src" ] || fail "rke2-cis-sysctl.conf of RKE2 $RKE2_VERSION not found under /usr/local/share/rke2, /opt/rke2/share/rke2 or /usr/share/rke2"
  changed=0
  if [ "$ROLE" = server ]; then
    if ! getent group etcd >/dev/null; then
      groupadd --system etcd || fail "groupadd etcd"
      log "system group etcd created"
      changed=1
    fi
    if ! getent passwd etcd >/dev/null; then
      useradd --system --gid etcd --no-create-home --shell /sbin/nologin --comment "etcd user" etcd ||
        fail "useradd etcd"
      log "system user etcd created"
      changed=1
    fi
  fi
  if [ "$(write_atomically "$SYSCTL_DEST" 0644 < "$src")" = changed ]; then changed=1; fi
  sysctl -p "$SYSCTL_DEST" >&2 || fail "sysctl -p $SYSCTL_DEST"
  wrong=""
  while IFS='=' read -r key want; do
    key=$(printf '%s' "$key" | tr -d ' ') want=$(printf '%s' "$want" | tr -d ' ')
    case $key in ''|'#'*|';'*) continue ;; esac
    got=$(sysctl -n "$key" 2>/dev/null || echo unreadable)
    [ "$got" = "$want" ] || wrong="$wrong $key=$got (wanted $want)"
  done < "$SYSCTL_DEST"
  [ -z "$wrong" ] || fail "kernel parameters did not take:$wrong"
  log "CIS kernel parameters applied from $src"
  if [ "$changed" = 1 ]; then echo changed; else echo unchanged; fi
}

case $ACTION in
  check) check; echo ok ;;
  apply) apply ;;
  *) fail "unknown ACTION $ACTION" ;;
esac
