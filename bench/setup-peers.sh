#!/bin/sh
# Install the peers bench/run.py compares nsbox against (Debian 12 packages). Idempotent:
# apt-get install is a no-op for packages already present. policy-rc.d keeps docker.io from
# starting dockerd; bench/run.py starts its own private dockerd only when asked (--docker).
set -eu
PKGS="runc crun podman docker.io hyperfine catatonit conmon skopeo buildah busybox-static"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
    echo "setup-peers: all peers already installed"
    exit 0
fi
echo "setup-peers: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q || true
# shellcheck disable=SC2086
apt-get -o DPkg::Lock::Timeout=600 install -y -q $missing
