#!/usr/bin/env bash
# Installs the pinned Pulumi CLI, Python language host and provider plugins into a
# cache directory keyed by the pins, and prints that bin directory as the LAST line
# on stdout. Progress and errors go to stderr. See toolchain/README.md.
#
# Environment:
#   TOOLCHAIN_SOURCE=auto|release|go   where binaries come from (default auto)
#   TOOLCHAIN_REBUILD=1                ignore a complete cached toolchain and rebuild it
#   TOOLCHAIN_KEEP_GOING=1             go source: try every component even after a failure
#   TOOLCHAIN_GOPROXY                  module proxy for the go source (default https://proxy.golang.org)
#   TOOLCHAIN_OFFLINE_PLUGINS=0        go source: fail instead of installing the offline plugins
#                                      (toolchain/offline) for modules the proxy refuses
#   TOOLCHAIN_VERSIONS_FILE            pins file (default <repo>/versions.env)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
VERSIONS_FILE="${TOOLCHAIN_VERSIONS_FILE:-$REPO/versions.env}"
SOURCE="${TOOLCHAIN_SOURCE:-auto}"

log() { printf 'toolchain: %s\n' "$*" >&2; }
die() { printf 'toolchain: ERROR: %s\n' "$*" >&2; exit 1; }

[[ -r "$VERSIONS_FILE" ]] || die "pins file not found: $VERSIONS_FILE"
case "$SOURCE" in auto | release | go) ;; *) die "TOOLCHAIN_SOURCE must be auto, release or go (got '$SOURCE')" ;; esac

# --- Pins -------------------------------------------------------------------------
PIN_KEYS=(
  PULUMI_VERSION
  PULUMI_LANGUAGE_PYTHON_GO_VERSION
  PULUMI_COMMAND_PROVIDER_VERSION
  PULUMI_COMMAND_PROVIDER_GO_VERSION
  PULUMI_KUBERNETES_PROVIDER_VERSION
  PULUMI_KUBERNETES_PROVIDER_GO_VERSION
  PULUMI_KUBERNETES_SDK_GO_VERSION
  PULUMI_TLS_PROVIDER_VERSION
  PULUMI_TLS_PROVIDER_GO_VERSION
)
set -a
# shellcheck disable=SC1090
. "$VERSIONS_FILE"
set +a
for k in "${PIN_KEYS[@]}"; do
  [[ -n "${!k:-}" ]] || die "$k is not set in $VERSIONS_FILE"
done

# The cache key covers the pin lines and the helper files that shape a go build, plus the
# offline plugins' requirements. The offline plugins' own sources (plain Python files run in
# place) are not in it: they are synced into a cached toolchain on every run (sync_offline),
# so editing one never rebuilds the Go binaries.
pin_lines="$(grep -E "^($(IFS='|'; echo "${PIN_KEYS[*]}"))=" "$VERSIONS_FILE" | LC_ALL=C sort)"
KEY="$(
  {
    printf '%s\n' "$pin_lines"
    (cd "$HERE" && find wrappers tls-shim offline/requirements.txt -type f -not -path '*/tests/*' \
      -not -name '*.pyc' 2>/dev/null | LC_ALL=C sort | xargs -r sha256sum)
  } | sha256sum | cut -c1-12
)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/rke2-rancher/toolchain"
DEST="$CACHE_ROOT/$KEY"
BIN="$DEST/bin"
LOGDIR="$CACHE_ROOT/logs/$KEY"
BINARIES=(pulumi pulumi-language-python pulumi-language-python-exec
  pulumi-resource-command pulumi-resource-kubernetes pulumi-resource-tls)

# A toolchain is complete when the marker written last is there, every binary is
# executable and the CLI reports the pinned version.
verify() {
  local dir="$1" b out
  [[ -f "$dir/COMPLETE" ]] || return 1
  for b in "${BINARIES[@]}"; do
    [[ -x "$dir/bin/$b" ]] || { log "missing $dir/bin/$b"; return 1; }
  done
  out="$("$dir/bin/pulumi" version 2>/dev/null)" || return 1
  [[ "$out" == "v$PULUMI_VERSION" ]] || { log "pulumi reports '$out', want v$PULUMI_VERSION"; return 1; }
}

# A cached toolchain that uses offline plugins runs the current toolchain/offline sources.
sync_offline() {
  local dir="$1" f
  [[ -d "$dir/offline" ]] || return 0
  for f in "$HERE"/offline/*.py; do
    cmp -s "$f" "$dir/offline/${f##*/}" && continue
    cp "$f" "$dir/offline/${f##*/}.tmp" && mv "$dir/offline/${f##*/}.tmp" "$dir/offline/${f##*/}"
    log "offline plugin source updated: ${f##*/}"
  done
}

if [[ "${TOOLCHAIN_REBUILD:-0}" != 1 ]] && verify "$DEST"; then
  sync_offline "$DEST"
  log "up to date: $DEST ($(sed -n 's/^source=//p' "$DEST/COMPLETE") build)"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE_ROOT" "$LOGDIR"
# One build per cache at a time; a second caller waits, then finds the result.
if command -v flock >/dev/null; then
  exec 9>"$CACHE_ROOT/.lock"
  flock 9
  if [[ "${TOOLCHAIN_REBUILD:-0}" != 1 ]] && verify "$DEST"; then
    log "built meanwhile by another run: $DEST"
    sync_offline "$DEST"
    echo "$BIN"
    exit 0
  fi
fi

STAGE="$(mktemp -d "$CACHE_ROOT/.building-$KEY.XXXXXX")"
# An if, not &&: an EXIT trap's status becomes the script's exit status.
cleanup() {
  if [[ -n "${STAGE:-}" && -d "$STAGE" ]]; then
    chmod -R u+w "$STAGE" 2>/dev/null || true
    rm -rf "$STAGE"
  fi
}
trap cleanup EXIT
mkdir -p "$STAGE/bin" "$STAGE/src"
START=$SECONDS

# --- Release archives ---------------------------------------------------------------
os="$(uname -s | tr '[:upper:]' '[:lower:]')"
case "$(uname -m)" in
  x86_64 | amd64) cli_arch=x64 plugin_arch=amd64 ;;
  aarch64 | arm64) cli_arch=arm64 plugin_arch=arm64 ;;
  *) cli_arch="$(uname -m)" plugin_arch="$(uname -m)" ;;
esac
CLI_URL="https://get.pulumi.com/releases/sdk/pulumi-v${PULUMI_VERSION}-${os}-${cli_arch}.tar.gz"

fetch_tgz() { # url destdir
  mkdir -p "$2"
  curl -fsSL --connect-timeout 10 --retry 2 "$1" | tar -xz -C "$2"
}

install_release() {
  log "downloading pulumi v$PULUMI_VERSION ($CLI_URL)..."
  fetch_tgz "$CLI_URL" "$STAGE/src/cli" || { log "download failed: $CLI_URL"; return 1; }
  local b
  for b in pulumi pulumi-language-python pulumi-language-python-exec; do
    install -m 0755 "$STAGE/src/cli/pulumi/$b" "$STAGE/bin/$b" || return 1
  done
  local name ver file url ok
  for name in command kubernetes tls; do
    case $name in
      command) ver=$PULUMI_COMMAND_PROVIDER_VERSION ;;
      kubernetes) ver=$PULUMI_KUBERNETES_PROVIDER_VERSION ;;
      tls) ver=$PULUMI_TLS_PROVIDER_VERSION ;;
    esac
    file="pulumi-resource-${name}-v${ver}-${os}-${plugin_arch}.tar.gz"
    ok=0
    for url in "https://get.pulumi.com/releases/plugins/$file" \
      "https://github.com/pulumi/pulumi-${name}/releases/download/v${ver}/$file"; do
      log "downloading pulumi-resource-$name v$ver ($url)..."
      if fetch_tgz "$url" "$STAGE/src/$name"; then ok=1; break; fi
    done
    [[ $ok == 1 ]] || { log "no release archive for pulumi-resource-$name v$ver"; return 1; }
    install -m 0755 "$STAGE/src/$name/pulumi-resource-$name" "$STAGE/bin/" || return 1
  done
}

# --- Go modules -----------------------------------------------------------------------
go_setup() {
  command -v go >/dev/null || { [[ -x /usr/local/go/bin/go ]] && PATH="/usr/local/go/bin:$PATH"; }
  command -v go >/dev/null || die "go source needs a Go toolchain (go 1.26+) on PATH"
  # Never fall back to "direct" (VCS hosts): modules come from the proxy only.
  export GOPROXY="${TOOLCHAIN_GOPROXY:-https://proxy.golang.org}"
  export GOTOOLCHAIN=local GOWORK=off GOFLAGS="-mod=mod -buildvcs=false"
  # These pseudo-versions are not in the checksum database; their hashes land in the
  # throwaway go.sum of the build and the module proxy is trusted for them.
  export GONOSUMDB="github.com/pulumi/pulumi-kubernetes/provider,github.com/pulumi/pulumi-tls/provider,github.com/pulumi/pulumi-command/provider,github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python${GONOSUMDB:+,$GONOSUMDB}"
  log "go source: $(go version | cut -d' ' -f3), GOPROXY=$GOPROXY, GOMODCACHE=$(go env GOMODCACHE)"
}

# run_step <component> <description> <cmd...>: runs in the current directory, full output
# to the component's log; on failure prints the last 20 lines and the log path.
run_step() {
  local comp="$1" what="$2"; shift 2
  local logf="$LOGDIR/$comp.log"
  printf '\n$ %s\n' "$*" >>"$logf"
  if ! "$@" >>"$logf" 2>&1; then
    log "FAILED: $comp: $what"
    tail -n 20 "$logf" | sed 's/^/    /' >&2
    log "full log: $logf"
    return 1
  fi
}

# Substitutes @KEY@ placeholders of a template with the pins.
render() { # template output
  local s k
  s="$(cat "$1")"
  for k in "${PIN_KEYS[@]}"; do s="${s//@$k@/${!k}}"; done
  printf '%s\n' "$s" >"$2"
}

mod_dir() { # module@version -> extracted directory in GOMODCACHE (downloads it)
  local json
  json="$(go mod download -json "$1")" || { printf '%s\n' "$json" >&2; return 1; }
  printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# Builds a main package of a dependency from a wrapper module (toolchain/wrappers/<comp>).
build_wrapped() { # comp package output ldflags-X...
  local comp="$1" pkg="$2" out="$3"; shift 3
  local w="$STAGE/src/$comp" x ldflags="-s -w"
  for x in "$@"; do ldflags+=" -X $x"; done
  mkdir -p "$w" || return 1
  render "$HERE/wrappers/$comp/go.mod.in" "$w/go.mod" || return 1
  cd "$w" || return 1
  run_step "$comp" "resolving modules" go mod tidy || return 1
  run_step "$comp" "go build $pkg" go build -trimpath -ldflags "$ldflags" -o "$STAGE/bin/$out" "$pkg" || return 1
  cd "$REPO"
}

# Copies a provider module out of GOMODCACHE so its generated embeds can be written.
copy_module() { # comp module@version
  local comp="$1" dir
  dir="$(cd "$STAGE/src" && mod_dir "$2" 2>>"$LOGDIR/$comp.log")" || true
  if [[ -z "$dir" || ! -d "$dir" ]]; then
    log "FAILED: $comp: cannot download $2"
    tail -n 20 "$LOGDIR/$comp.log" | sed 's/^/    /' >&2
    log "full log: $LOGDIR/$comp.log"
    return 1
  fi
  rm -rf "$STAGE/src/$comp"
  cp -r "$dir" "$STAGE/src/$comp" && chmod -R u+w "$STAGE/src/$comp"
}

build_pulumi() {
  log "building pulumi (module github.com/pulumi/pulumi/pkg/v3@v$PULUMI_VERSION)..."
  build_wrapped pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi \
    "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
}

build_language_python() {
  log "building pulumi-language-python (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3@$PULUMI_LANGUAGE_PYTHON_GO_VERSION)..."
  build_wrapped language-python github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 \
    pulumi-language-python \
    "github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" || return 1
  # The exec script ships in the sdk/v3 module of the same release.
  local sdk
  sdk="$(cd "$STAGE/src/language-python" && mod_dir "github.com/pulumi/pulumi/sdk/v3@v$PULUMI_VERSION")" || return 1
  install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$STAGE/bin/pulumi-language-python-exec" || return 1
}

build_command() {
  log "building pulumi-resource-command (module github.com/pulumi/pulumi-command/provider@$PULUMI_COMMAND_PROVIDER_GO_VERSION)..."
  build_wrapped command github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command \
    pulumi-resource-command \
    "github.com/pulumi/pulumi-command/provider/pkg/version.Version=v$PULUMI_COMMAND_PROVIDER_VERSION"
}

build_kubernetes() {
  local mod=github.com/pulumi/pulumi-kubernetes/provider/v4
  log "building pulumi-resource-kubernetes (module $mod@$PULUMI_KUBERNETES_PROVIDER_GO_VERSION)..."
  copy_module kubernetes "$mod@$PULUMI_KUBERNETES_PROVIDER_GO_VERSION" || return 1
  cd "$STAGE/src/kubernetes" || return 1
  # The provider imports sdk/v4 through a local replace (../sdk): use the published SDK module.
  go mod edit -replace "github.com/pulumi/pulumi-kubernetes/sdk/v4=github.com/pulumi/pulumi-kubernetes/sdk/v4@$PULUMI_KUBERNETES_SDK_GO_VERSION" || return 1
  # go:generate in cmd/pulumi-resource-kubernetes: stamps the version into schema-embed.json.
  cd cmd/pulumi-resource-kubernetes || return 1
  log "  generating schema-embed.json..."
  run_step kubernetes "generating schema-embed.json" env VERSION="$PULUMI_KUBERNETES_PROVIDER_VERSION" go run ./generate.go || return 1
  cd "$STAGE/src/kubernetes" || return 1
  log "  compiling..."
  run_step kubernetes "go build" go build -trimpath \
    -ldflags "-s -w -X $mod/pkg/version.Version=$PULUMI_KUBERNETES_PROVIDER_VERSION" \
    -o "$STAGE/bin/pulumi-resource-kubernetes" ./cmd/pulumi-resource-kubernetes || return 1
  cd "$REPO"
}

# The version the go.mod in the current directory requires of a module ("" when none).
required_version() { # module
  go mod edit -json | python3 -c 'import json, sys
req = {r["Path"]: r["Version"] for r in json.load(sys.stdin).get("Require", [])}
print(req.get(sys.argv[1], ""))' "$1"
}

build_tls() {
  local mod=github.com/pulumi/pulumi-tls/provider/v5 tfver fwver
  log "building pulumi-resource-tls (module $mod@$PULUMI_TLS_PROVIDER_GO_VERSION)..."
  copy_module tls "$mod@$PULUMI_TLS_PROVIDER_GO_VERSION" || return 1
  cd "$STAGE/src/tls" || return 1
  # The module replaces github.com/hashicorp/terraform-provider-tls/shim with ./shim, which
  # the module zip lacks: recreate it at the versions the provider's go.mod requires.
  tfver="$(required_version github.com/hashicorp/terraform-provider-tls)"
  fwver="$(required_version github.com/hashicorp/terraform-plugin-framework)"
  [[ -n "$tfver" && -n "$fwver" ]] || { log "FAILED: tls: go.mod does not name terraform-provider-tls/terraform-plugin-framework"; return 1; }
  rm -rf shim && mkdir shim && cp "$HERE/tls-shim/shim.go" shim/shim.go || return 1
  printf 'module github.com/hashicorp/terraform-provider-tls/shim\n\ngo 1.22\n\nrequire (\n\tgithub.com/hashicorp/terraform-plugin-framework %s\n\tgithub.com/hashicorp/terraform-provider-tls %s\n)\n' \
    "$fwver" "$tfver" >shim/go.mod || return 1
  cd cmd/pulumi-resource-tls || return 1
  if [[ -f generate.go ]]; then
    log "  generating embedded schema..."
    run_step tls "generating embedded schema" env VERSION="$PULUMI_TLS_PROVIDER_VERSION" go run ./generate.go || return 1
  fi
  cd "$STAGE/src/tls" || return 1
  log "  compiling..."
  run_step tls "go build" go build -trimpath \
    -ldflags "-s -w -X $mod/pkg/version.Version=$PULUMI_TLS_PROVIDER_VERSION" \
    -o "$STAGE/bin/pulumi-resource-tls" ./cmd/pulumi-resource-tls || return 1
  cd "$REPO"
}

# --- Offline plugins ------------------------------------------------------------------
# Python implementations (toolchain/offline) of the plugins whose Go modules a proxy may
# refuse: the language host, the command and the TLS providers. They run in their own venv.
OFFLINE_USED=()
offline_venv() {
  [[ -x "$STAGE/offline-venv/bin/python" ]] && return 0
  log "  creating the offline plugins' venv (toolchain/offline/requirements.txt)..."
  run_step offline "python venv" python3 -m venv "$STAGE/offline-venv" || return 1
  run_step offline "pip install" "$STAGE/offline-venv/bin/pip" install -q --disable-pip-version-check \
    -r "$HERE/offline/requirements.txt" || return 1
  mkdir -p "$STAGE/offline" && cp "$HERE"/offline/*.py "$STAGE/offline/" || return 1
}

install_offline() { # plugin-binary-name script.py
  offline_venv || return 1
  # Paths are those of the final directory: the stage is renamed into place.
  printf '#!/bin/sh\n# rke2-rancher offline implementation (toolchain/offline/%s)\nexec "%s/offline-venv/bin/python" "%s/offline/%s" "$@"\n' \
    "$2" "$DEST" "$DEST" "$2" >"$STAGE/bin/$1" && chmod 0755 "$STAGE/bin/$1" || return 1
  OFFLINE_USED+=("$1")
  log "  installed $1: rke2-rancher's offline implementation ($2)"
}

offline_fallback() { # step
  [[ "${TOOLCHAIN_OFFLINE_PLUGINS:-1}" == 1 ]] || return 1
  case "$1" in
    language_python) log "  module refused: using the offline language host"
      install_offline pulumi-language-python language_host.py &&
        install_offline pulumi-language-python-exec language_host.py ;;
    command) log "  module refused: using the offline command provider"
      install_offline pulumi-resource-command command_provider.py ;;
    tls) log "  module refused: using the offline TLS provider"
      install_offline pulumi-resource-tls tls_provider.py ;;
    *) return 1 ;;
  esac
}

install_go() {
  go_setup
  rm -f "$LOGDIR"/*.log
  local step failed=()
  for step in pulumi language_python command kubernetes tls; do
    local t0=$SECONDS
    if "build_$step" || { cd "$REPO"; offline_fallback "$step"; }; then
      log "  done in $((SECONDS - t0))s"
    else
      cd "$REPO"
      failed+=("$step")
      [[ "${TOOLCHAIN_KEEP_GOING:-0}" == 1 ]] || break
    fi
  done
  if ((${#failed[@]})); then
    log "go build failed for: ${failed[*]} (logs in $LOGDIR)"
    if [[ "${TOOLCHAIN_KEEP_GOING:-0}" == 1 ]]; then
      # Keep what did build, under a name that never passes for a toolchain.
      rm -rf "$CACHE_ROOT/partial-$KEY" && mv "$STAGE/bin" "$CACHE_ROOT/partial-$KEY"
      log "binaries that did build (incomplete, not installed): $CACHE_ROOT/partial-$KEY"
    fi
    return 1
  fi
}

# --- Main -----------------------------------------------------------------------------
release_reachable() {
  curl -fsSI --connect-timeout 5 --max-time 20 -o /dev/null "$CLI_URL" 2>/dev/null
}

log "installing toolchain $KEY (source: $SOURCE) into $DEST"
used=""
case "$SOURCE" in
  release) install_release || die "release download failed (try TOOLCHAIN_SOURCE=go)"; used=release ;;
  go) install_go || die "toolchain not installed"; used=go ;;
  auto)
    if release_reachable && install_release; then
      used=release
    else
      log "release archives unreachable: building from Go modules"
      rm -rf "${STAGE:?}/bin" && mkdir -p "$STAGE/bin"
      install_go || die "toolchain not installed"
      used=go
    fi
    ;;
esac

{
  printf 'source=%s\nbuilt=%s\nseconds=%s\noffline=%s\n' "$used" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$((SECONDS - START))" "${OFFLINE_USED[*]:-}"
  printf '%s\n' "$pin_lines"
} >"$STAGE/COMPLETE.tmp"
rm -rf "$STAGE/src"
mv "$STAGE/COMPLETE.tmp" "$STAGE/COMPLETE"
verify "$STAGE" || die "fresh toolchain failed verification (kept nothing)"
# Swap into place: an older incomplete directory under the same key is moved aside first.
if [[ -e "$DEST" ]]; then
  old="$CACHE_ROOT/.old-$KEY.$$"
  mv "$DEST" "$old"
  chmod -R u+w "$old" 2>/dev/null || true
  rm -rf "$old"
fi
mv "$STAGE" "$DEST"
STAGE=""
log "installed in $((SECONDS - START))s: $BIN"
echo "$BIN"
