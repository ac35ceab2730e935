#!/bin/sh
# rke2-standin's rke2-killall.sh (lab stand-in, NOT RKE2's): stops the services, any
# rke2-standin process started by hand and the real parts it runs in place of RKE2's static
# pods (/opt/rk2lab-parts/...). There are no containers or CNI links to clean up.
if [ ! "$(id -u)" -eq 0 ]; then
    echo "$(basename "${0}"): must be run as root" >&2
    exit 1
fi

set -x
systemctl stop rke2-server.service || true
systemctl stop rke2-agent.service || true

{ set +x; } 2>/dev/null
# Lab hosts share one process table: only touch processes in this host's network namespace.
own_ns=$(readlink /proc/self/ns/net)
for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "${pid}" = "$$" ] && continue
    [ "$(readlink "${p}/ns/net" 2>/dev/null)" = "${own_ns}" ] || continue
    case "$(tr '\0' ' ' < "${p}/cmdline" 2>/dev/null)" in
        *"/bin/rke2 server"*|*"/bin/rke2 agent"*|"/opt/rk2lab-parts/"*) kill -9 "${pid}" 2>/dev/null || true ;;
    esac
done
set -x

rm -rf /var/lib/cni/ /var/log/pods/ /var/log/containers
