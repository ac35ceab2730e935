# Installs the pinned RKE2 release unless it is already there. Does not start it.
# host-effect: install if changed(RKE2_VERSION) or changed(RKE2_TYPE); nothing
# In: RKE2_VERSION, RKE2_TYPE (server|agent), INSTALL_SCRIPT_URL, ARTIFACT_DIR (may be empty).
# curl -g: no URL globbing ({a,b} and [1-9] in the URL are literal).
if bin=$(rke2_bin rke2) && [ "$("$bin" --version 2>/dev/null | awk 'NR == 1 { print $3 }')" = "$RKE2_VERSION" ]; then
  log "RKE2 $RKE2_VERSION already installed ($bin)"
  echo unchanged
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "fetching the installer from $INSTALL_SCRIPT_URL"
if command -v curl >/dev/null 2>&1; then
  curl -gsfL --retry 3 -o "$work/install.sh" "$INSTALL_SCRIPT_URL" || fail "could not fetch $INSTALL_SCRIPT_URL"
elif command -v wget >/dev/null 2>&1; then
  wget -qO "$work/install.sh" "$INSTALL_SCRIPT_URL" || fail "could not fetch $INSTALL_SCRIPT_URL"
else
  fail "neither curl nor wget is installed"
fi
log "installing RKE2 $RKE2_VERSION ($RKE2_TYPE)${ARTIFACT_DIR:+ from $ARTIFACT_DIR}"
if [ -n "$ARTIFACT_DIR" ]; then
  INSTALL_RKE2_ARTIFACT_PATH=$ARTIFACT_DIR INSTALL_RKE2_VERSION=$RKE2_VERSION INSTALL_RKE2_TYPE=$RKE2_TYPE \
    sh "$work/install.sh" >&2
else
  INSTALL_RKE2_VERSION=$RKE2_VERSION INSTALL_RKE2_TYPE=$RKE2_TYPE sh "$work/install.sh" >&2
fi
bin=$(rke2_bin rke2) || fail "the installer finished but no rke2 binary was found"
got=$("$bin" --version | awk 'NR == 1 { print $3 }')
[ "$got" = "$RKE2_VERSION" ] || fail "installed $got, wanted $RKE2_VERSION"
log "RKE2 $RKE2_VERSION installed"
echo installed
