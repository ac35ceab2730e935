# Places image archives in RKE2's images directory (imported at start), each verified by sha256.
# host-effect: file if changed(stdin); nothing
# In: DIR. Stdin: one `sha256 name url` line per archive (cluster.imagesArchives).
# An archive already present with the right sha256 is left alone; a download goes to a temp
# file in DIR and is moved into place only once its sha256 matches.
# curl -g: no URL globbing; --proto: https and file only, redirects to https only.
mkdir -p "$DIR"
tmp=""
trap 'if [ -n "$tmp" ]; then rm -f "$tmp"; fi' EXIT
sha_of() { sha256sum "$1" | awk '{ print $1 }'; }
placed=0 kept=0
while read -r sum name link; do
  [ -n "$sum" ] || continue
  case $name in ''|.*|*/*) fail "refusing archive name '$name'" ;; esac
  case $sum in *[!0-9a-f]*) fail "$name: '$sum' is not a lowercase sha256" ;; esac
  [ ${#sum} = 64 ] || fail "$name: '$sum' is not a sha256 (64 hex characters)"
  dest=$DIR/$name
  if [ -f "$dest" ] && [ "$(sha_of "$dest")" = "$sum" ]; then
    log "$dest present, sha256 matches"
    kept=$((kept + 1))
    continue
  fi
  command -v curl >/dev/null 2>&1 || fail "curl is not installed: needed to fetch $link"
  tmp=$(mktemp "$DIR/.rke2-rancher.XXXXXX")
  log "fetching $name from $link"
  if ! curl -gfsSL --retry 3 --proto '=https,file' --proto-redir '=https' -o "$tmp" "$link" </dev/null; then
    fail "could not fetch $link"
  fi
  got=$(sha_of "$tmp")
  [ "$got" = "$sum" ] || fail "$link: sha256 is $got, cluster.imagesArchives says $sum; $name was not placed"
  chmod 0644 "$tmp"
  mv -f "$tmp" "$dest"
  tmp=""
  log "$dest placed (sha256 $sum)"
  placed=$((placed + 1))
done
log "$placed archive(s) placed, $kept already in place"
if [ "$placed" -gt 0 ]; then echo changed; else echo unchanged; fi
