#!/usr/bin/env bash
# Builds the real upstream programs the host lab runs (etcd + etcdctl, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kwok) from the Go module proxy ONLY,
# at the pins of versions.env "Lab (real parts)", into
# ${XDG_CACHE_HOME:-~/.cache}/rke2-rancher/lab-parts/<key>/bin, where <key> hashes the
# pins and this file. Same pattern as toolchain/bootstrap.sh: staging dir
# renamed at the end, COMPLETE marker written last, flock against concurrent builds.
# Progress on stderr, full log in the cache's logs/<key>/build.log, LAST stdout line =
# the bin dir. Never commit what this builds.
#
# Environment:
#   LAB_PARTS_REBUILD=1          ignore a complete cache and rebuild
#   LAB_PARTS_VERSIONS_FILE      pins file (default <repo>/versions.env)
#   LAB_PARTS_CONTROLLERS=0      skip kube-controller-manager and kube-scheduler (built by
#                                default: they make Deployments' pods exist and get a node;
#                                ~2.5 min of the cold build); LAB_PARTS_CONTROLLER_MANAGER is
#                                the older name
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
VERSIONS_FILE="${LAB_PARTS_VERSIONS_FILE:-$REPO/versions.env}"

log() { printf 'lab-parts: %s\n' "$*" >&2; }
die() { printf 'lab-parts: ERROR: %s\n' "$*" >&2; exit 1; }

PIN_KEYS=(ETCD_VERSION KUBERNETES_VERSION KWOK_VERSION)
set -a
# shellcheck disable=SC1090
. "$VERSIONS_FILE"
set +a
for k in "${PIN_KEYS[@]}"; do [[ -n "${!k:-}" ]] || die "$k is not set in $VERSIONS_FILE"; done
command -v go >/dev/null || die "go is not installed"

WITH_KCM="${LAB_PARTS_CONTROLLERS:-${LAB_PARTS_CONTROLLER_MANAGER:-1}}"
KEY="$(
  {
    grep -E "^($(IFS='|'; echo "${PIN_KEYS[*]}"))=" "$VERSIONS_FILE" | LC_ALL=C sort
    echo "kcm=$WITH_KCM"
    sha256sum < "$HERE/build.sh"  # contents only: the same key from any clone
    go env GOVERSION GOOS GOARCH
  } | sha256sum | cut -c1-12
)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rke2-rancher/lab-parts"
DEST="$CACHE_ROOT/$KEY"
BIN="$DEST/bin"
LOGDIR="$CACHE_ROOT/logs/$KEY"
LOG="$LOGDIR/build.log"
BINARIES=(etcd etcdctl kube-apiserver kubectl kwok)
[[ "$WITH_KCM" == 1 ]] && BINARIES+=(kube-controller-manager kube-scheduler)

verify() {
  local dir="$1" b
  [[ -f "$dir/COMPLETE" ]] || return 1
  for b in "${BINARIES[@]}"; do [[ -x "$dir/bin/$b" ]] || { log "missing $dir/bin/$b"; return 1; }; done
  # Output captured first: `cmd | grep -q` fails under pipefail when grep exits early (SIGPIPE).
  local out
  out="$("$dir/bin/kubectl" version --client 2>/dev/null)" || return 1
  [[ "$out" == *"$KUBERNETES_VERSION"* ]] || return 1
  out="$("$dir/bin/etcd" --version 2>/dev/null)" || return 1
  [[ "$out" == *"${ETCD_VERSION#v}"* ]] || return 1
}

if [[ "${LAB_PARTS_REBUILD:-0}" != 1 ]] && verify "$DEST"; then
  log "up to date: $DEST"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT" "$LOGDIR"
exec 9>"$CACHE_ROOT/.lock"
flock 9
if [[ "${LAB_PARTS_REBUILD:-0}" != 1 ]] && verify "$DEST"; then
  log "built meanwhile by another run: $DEST"
  echo "$BIN"
  exit 0
fi

STAGE="$(mktemp -d "$CACHE_ROOT/.building-$KEY.XXXXXX")"
cleanup() {
  if [[ -n "${STAGE:-}" && -d "$STAGE" ]]; then
    chmod -R u+w "$STAGE" 2>/dev/null || true
    rm -rf "$STAGE"
  fi
}
trap cleanup EXIT
mkdir -p "$STAGE/bin" "$STAGE/src"
: >"$LOG"
export GOFLAGS=-mod=mod CGO_ENABLED=0
TIMES="$STAGE/times"
START=$SECONDS

step() { # name dir cmd...: runs a build step in dir, logs it, records its time
  local name="$1" dir="$2" t0=$SECONDS
  shift 2
  log "$name..."
  printf '\n=== %s: %s\n' "$name" "$*" >>"$LOG"
  (cd "$dir" && "$@") >>"$LOG" 2>&1 || die "$name failed; see $LOG"
  printf '%s %ss\n' "$name" "$((SECONDS - t0))" | tee -a "$TIMES" >&2
}

# --- etcd + etcdctl: a wrapper module requiring upstream server/v3 and etcdctl/v3 ------
E="$STAGE/src/etcd"
mkdir -p "$E"
cat >"$E/go.mod" <<GOMOD
module lab/etcd

go 1.23
GOMOD
cat >"$E/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
step "etcd: go get" "$E" go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@$ETCD_VERSION"
step "etcd: build" "$E" go build -trimpath -ldflags "-s -w" -o "$STAGE/bin/etcd" go.etcd.io/etcd/server/v3
step "etcdctl: build" "$E" go build -trimpath -ldflags "-s -w" -o "$STAGE/bin/etcdctl" go.etcd.io/etcd/etcdctl/v3

# --- Kubernetes: k8s.io/kubernetes plus replaces of its ./staging modules by the published
# k8s.io/<x> v0.<minor>.<patch> (its go.mod replaces them with local paths) ---------------
K="$STAGE/src/kubernetes"
mkdir -p "$K"
kgomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
staging_version="v0.${KUBERNETES_VERSION#v1.}"
{
  echo "module lab/kubernetes"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $KUBERNETES_VERSION"
  echo
  echo "replace ("
  sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => \./staging/.*#\t\1 => \1 '"$staging_version"'#p' "$kgomod"
  echo ")"
} >"$K/go.mod"
nrepl="$(grep -c ' => ' "$K/go.mod")"
[[ "$nrepl" -gt 20 ]] || die "found only $nrepl staging replaces in k8s.io/kubernetes go.mod"
cat >"$K/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
step "kubernetes: go mod tidy ($nrepl staging replaces)" "$K" go mod tidy
minor="${KUBERNETES_VERSION#v1.}"
minor="${minor%%.*}"
build_date="$(date -u -d "@$(stat -c %Y "$kgomod")" +%Y-%m-%dT%H:%M:%SZ)"
vflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  vflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  vflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done
k8s_parts=(kube-apiserver kubectl)
[[ "$WITH_KCM" == 1 ]] && k8s_parts+=(kube-controller-manager kube-scheduler)
for part in "${k8s_parts[@]}"; do
  step "$part: build" "$K" go build -trimpath -ldflags "-s -w$vflags" -o "$STAGE/bin/$part" "k8s.io/kubernetes/cmd/$part"
done

# --- kwok: its own module, built as released ------------------------------------------
step "kwok: build" "$STAGE/src" env GOFLAGS= GOBIN="$STAGE/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"

rm -rf "$STAGE/src"
{
  echo "key=$KEY"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "seconds=$((SECONDS - START))"
  cat "$TIMES"
} >"$STAGE/COMPLETE.tmp"
rm -f "$TIMES"
rm -rf "$DEST"
mv "$STAGE" "$DEST"
mv "$DEST/COMPLETE.tmp" "$DEST/COMPLETE"
STAGE=""
verify "$DEST" || die "built parts fail verification in $DEST"
log "done in $((SECONDS - START))s: $(du -sh "$BIN" | cut -f1) in $BIN"
echo "$BIN"
