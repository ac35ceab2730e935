#!/bin/sh
# rke2-standin install.sh: the host lab's stand-in for the installer served at
# https://get.rke2.io. It installs rke2-standin (a behavioural stand-in), NOT RKE2.
# Only the air-gap tar path exists in the lab, and it follows the real script: artifacts
# from INSTALL_RKE2_ARTIFACT_PATH, or downloaded from the mirror INSTALL_RKE2_ARTIFACT_URL
# (<url>/<version, + as %2B>/<file>), rke2.linux-<arch>.tar.gz verified against
# sha256sum-<arch>.txt (optional rke2-images.linux-<arch>.tar.zst), unpacked into
# INSTALL_RKE2_TAR_PREFIX (/usr/local, or /opt/rke2 when /usr/local is read-only or a mount
# point), then `systemctl daemon-reload`. It neither enables nor starts a service.
set -e

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() { echo "[ERROR]  $*" >&2; exit 1; }

info "rke2-standin installer (lab stand-in for get.rke2.io; installs rke2-standin, not RKE2)"
[ "$(id -u)" -eq 0 ] || fatal "You need to be root to perform this install"

INSTALL_RKE2_TYPE="${INSTALL_RKE2_TYPE:-${INSTALL_RKE2_EXEC:-server}}"
case "${INSTALL_RKE2_TYPE}" in
    server|agent) ;;
    *) fatal "invalid INSTALL_RKE2_TYPE '${INSTALL_RKE2_TYPE}': server or agent" ;;
esac
case "${INSTALL_RKE2_METHOD:-tar}" in
    tar) ;;
    *) fatal "INSTALL_RKE2_METHOD=${INSTALL_RKE2_METHOD} is not available in the lab (tar only)" ;;
esac
if [ -z "${INSTALL_RKE2_ARTIFACT_PATH}" ] && [ -z "${INSTALL_RKE2_ARTIFACT_URL}" ]; then
    fatal "lab hosts cannot reach GitHub or the release channels: set INSTALL_RKE2_ARTIFACT_PATH or INSTALL_RKE2_ARTIFACT_URL (air-gap install)"
fi

case "${ARCH:=$(uname -m)}" in
    x86_64|amd64) ARCH=amd64 ;;
    aarch64|arm64) ARCH=arm64 ;;
    *) fatal "unsupported architecture ${ARCH}" ;;
esac
SUFFIX="linux-${ARCH}"

DEFAULT_TAR_PREFIX=/usr/local
if [ -z "${INSTALL_RKE2_TAR_PREFIX}" ]; then
    INSTALL_RKE2_TAR_PREFIX="${DEFAULT_TAR_PREFIX}"
    if mountpoint -q "${INSTALL_RKE2_TAR_PREFIX}" || \
        ! { touch "${INSTALL_RKE2_TAR_PREFIX}/.rke2-ro-test" 2>/dev/null && rm -f "${INSTALL_RKE2_TAR_PREFIX}/.rke2-ro-test"; }; then
        INSTALL_RKE2_TAR_PREFIX=/opt/rke2
        warn "${DEFAULT_TAR_PREFIX} is read-only or a mount point; installing to ${INSTALL_RKE2_TAR_PREFIX}"
    fi
fi
INSTALL_RKE2_AGENT_IMAGES_DIR="${INSTALL_RKE2_AGENT_IMAGES_DIR:-/var/lib/rancher/rke2/agent/images}"

TMP_DIR=$(mktemp -d -t rke2-install.XXXXXXXXXX)
trap 'rm -rf "${TMP_DIR}"' EXIT INT

download() {
    if command -v curl >/dev/null 2>&1; then
        curl -o "$1" -fsSL "$2" || fatal "download failed: $2"
    elif command -v wget >/dev/null 2>&1; then
        wget -qO "$1" "$2" || fatal "download failed: $2"
    else
        fatal "can not find curl or wget for downloading files"
    fi
}

if [ -z "${INSTALL_RKE2_ARTIFACT_PATH}" ]; then
    [ -n "${INSTALL_RKE2_VERSION}" ] || \
        fatal "INSTALL_RKE2_VERSION is required with INSTALL_RKE2_ARTIFACT_URL (no release channels in the lab)"
    version_urlsafe=$(echo "${INSTALL_RKE2_VERSION}" | sed 's/+/%2B/g')
    INSTALL_RKE2_ARTIFACT_PATH="${TMP_DIR}/downloaded"
    mkdir -p "${INSTALL_RKE2_ARTIFACT_PATH}"
    for f in "sha256sum-${ARCH}.txt" "rke2.${SUFFIX}.tar.gz"; do
        info "downloading ${INSTALL_RKE2_ARTIFACT_URL}/${version_urlsafe}/${f}"
        download "${INSTALL_RKE2_ARTIFACT_PATH}/${f}" "${INSTALL_RKE2_ARTIFACT_URL}/${version_urlsafe}/${f}"
    done
fi

info "staging local checksums from ${INSTALL_RKE2_ARTIFACT_PATH}/sha256sum-${ARCH}.txt"
cp -f "${INSTALL_RKE2_ARTIFACT_PATH}/sha256sum-${ARCH}.txt" "${TMP_DIR}/rke2.checksums" || \
    fatal "missing ${INSTALL_RKE2_ARTIFACT_PATH}/sha256sum-${ARCH}.txt"
CHECKSUM_EXPECTED=$(grep "rke2.${SUFFIX}.tar.gz" "${TMP_DIR}/rke2.checksums" | awk '{print $1}')

IMAGES="${INSTALL_RKE2_ARTIFACT_PATH}/rke2-images.${SUFFIX}.tar.zst"
if [ -f "${IMAGES}" ]; then
    info "staging zst airgap image tarball from ${IMAGES}"
    AIRGAP_EXPECTED=$(grep "rke2-images.${SUFFIX}.tar.zst" "${TMP_DIR}/rke2.checksums" | awk '{print $1}')
    AIRGAP_ACTUAL=$(sha256sum "${IMAGES}" | awk '{print $1}')
    [ "${AIRGAP_EXPECTED}" = "${AIRGAP_ACTUAL}" ] || \
        fatal "download sha256 does not match ${AIRGAP_EXPECTED}, got ${AIRGAP_ACTUAL}"
    mkdir -p "${INSTALL_RKE2_AGENT_IMAGES_DIR}"
    cp -f "${IMAGES}" "${INSTALL_RKE2_AGENT_IMAGES_DIR}/"
fi

info "staging tarball from ${INSTALL_RKE2_ARTIFACT_PATH}/rke2.${SUFFIX}.tar.gz"
cp -f "${INSTALL_RKE2_ARTIFACT_PATH}/rke2.${SUFFIX}.tar.gz" "${TMP_DIR}/rke2.tarball" || \
    fatal "missing ${INSTALL_RKE2_ARTIFACT_PATH}/rke2.${SUFFIX}.tar.gz"
info "verifying tarball"
CHECKSUM_ACTUAL=$(sha256sum "${TMP_DIR}/rke2.tarball" | awk '{print $1}')
if [ -z "${CHECKSUM_EXPECTED}" ] || [ "${CHECKSUM_EXPECTED}" != "${CHECKSUM_ACTUAL}" ]; then
    fatal "download sha256 does not match ${CHECKSUM_EXPECTED}, got ${CHECKSUM_ACTUAL}"
fi

info "unpacking tarball file to ${INSTALL_RKE2_TAR_PREFIX}"
mkdir -p "${INSTALL_RKE2_TAR_PREFIX}"
tar xzf "${TMP_DIR}/rke2.tarball" -C "${INSTALL_RKE2_TAR_PREFIX}"
if [ "${INSTALL_RKE2_TAR_PREFIX}" != "${DEFAULT_TAR_PREFIX}" ]; then
    info "updating tarball contents to reflect install path"
    sed -i "s|${DEFAULT_TAR_PREFIX}|${INSTALL_RKE2_TAR_PREFIX}|" \
        "${INSTALL_RKE2_TAR_PREFIX}"/lib/systemd/system/rke2-*.service \
        "${INSTALL_RKE2_TAR_PREFIX}/bin/rke2-uninstall.sh"
    info "moving systemd units to /etc/systemd/system"
    mv -f "${INSTALL_RKE2_TAR_PREFIX}"/lib/systemd/system/rke2-*.service /etc/systemd/system/
    info "install complete; you may want to run:  export PATH=\$PATH:${INSTALL_RKE2_TAR_PREFIX}/bin"
fi

if [ -n "${INSTALL_RKE2_VERSION}" ]; then
    INSTALLED=$("${INSTALL_RKE2_TAR_PREFIX}/bin/rke2" --version | awk 'NR==1 {print $3}')
    if [ "${INSTALLED}" != "${INSTALL_RKE2_VERSION}" ]; then
        # The real installer also installs the artifacts as they are in this case.
        warn "rke2-standin: INSTALL_RKE2_VERSION=${INSTALL_RKE2_VERSION} but the artifacts hold ${INSTALLED}"
    fi
fi

if [ -z "${INSTALL_RKE2_SKIP_RELOAD}" ]; then
    systemctl daemon-reload
fi
