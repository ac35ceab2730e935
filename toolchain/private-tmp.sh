#!/usr/bin/env bash
# Runs a command (pulumi) with TMPDIR set to a new private directory, removed when it ends,
# whether it succeeds, fails or is interrupted.
#
# Why: the kubernetes provider writes its kubeconfig, which holds the cluster admin's client
# key, to os.CreateTemp("", "kubeconfig") each time it is configured, for Helm, and never
# removes it (pulumi-kubernetes provider/pkg/provider/provider.go Configure ->
# writeKubeconfigToFile in util.go). Without this, every `pulumi up` leaves one more copy of
# the key in /tmp. The engine starts its plugins with its own environment, so they inherit
# TMPDIR.
#
# RKE2_RANCHER_TMP_BASE: where the private directory is made (default: $TMPDIR, else /tmp).
set -euo pipefail
[ "$#" -gt 0 ] || { echo "usage: private-tmp.sh COMMAND [ARG...]" >&2; exit 2; }
base="${RKE2_RANCHER_TMP_BASE:-${TMPDIR:-/tmp}}"
dir="$(mktemp -d "$base/rke2-rancher.XXXXXXXX")"  # mktemp -d makes it 0700
trap 'rm -rf -- "$dir"' EXIT
# The command runs as a child so that a TERM sent to this script alone reaches it too. An
# interrupt from the terminal reaches the whole process group already; passing it on would
# be pulumi's second Ctrl-C, which cancels without cleaning up. (The explicit stdin: a background
# job's would otherwise be /dev/null, and pulumi may ask questions.)
{ exec 3<&0; } 2>/dev/null || exec 3</dev/null  # stdin may be closed
TMPDIR="$dir" "$@" <&3 3<&- &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM
trap ':' INT
status=0
while :; do
  wait "$child" && status=0 || status=$?
  kill -0 "$child" 2>/dev/null || break  # wait returns early when a trap ran
done
exit "$status"
