#!/usr/bin/env bash
# Installs the Debian packages the test suite uses, when missing and when we can.
# Tests that need a missing tool skip with a reason, so this never fails the build.
set -u
need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need+=(openssh-client)
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v keepalived >/dev/null 2>&1 || [ -x /usr/sbin/keepalived ] || need+=(keepalived)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# systemd lab hosts (tests/lab/systemd_hosts.py): a debootstrap base booted with nspawn.
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "host-deps: missing ${need[*]} (install them for the script and host-lab tests)" >&2
  exit 0
fi
echo "host-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
  { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${need[@]}" >/dev/null 2>&1; } ||
  echo "host-deps: could not install ${need[*]}" >&2
# The packages' own services are not wanted on the test machine.
for s in ssh haproxy keepalived; do
  (systemctl disable --now "$s" || service "$s" stop) >/dev/null 2>&1 || true
done
exit 0
