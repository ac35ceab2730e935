# Installs HAProxy (and keepalived for a VIP) from the host's package manager.
# host-effect: install if changed(PACKAGES); nothing
# In: PACKAGES (space-separated).
missing=""
for p in $PACKAGES; do command -v "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -z "$missing" ]; then log "already installed:$PACKAGES"; echo unchanged; exit 0; fi
log "installing$missing"
if command -v apt-get >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >&2; }
elif command -v dnf >/dev/null 2>&1; then dnf install -y $missing >&2
elif command -v zypper >/dev/null 2>&1; then zypper --non-interactive install $missing >&2
else fail "no supported package manager (apt-get, dnf, zypper) to install$missing"
fi
echo installed
