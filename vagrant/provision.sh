#!/bin/bash
# provision.sh: THE install script for nsbox on Debian 12 (bookworm), run as root.
#
#   vagrant/provision.sh [--lane-host] [--vagrant-guest] [--no-link]
#
# Used by: the README (fresh machine), the Vagrantfile, the VM lane image build (run inside
# the image chroot) and CI (before the tests). Idempotent; a no-op run takes ~1-2 s.
#
#   1. apt packages nsbox needs at runtime and for the tests (apt-get update only if one is missing)
#   2. the venv /opt/nsbox/venv from /usr/bin/python3, with `pip install -e "$REPO[test]"`
#      (skipped when the venv already imports nsbox from $REPO with the same pyproject.toml)
#   2c. the system user `nsbox` with subordinate ids in /etc/subuid and /etc/subgid (--userns auto)
#   3. /usr/local/bin/nsbox -> /opt/nsbox/venv/bin/nsbox (unless --no-link)
#   (2b: link-source.sh swaps setuptools' editable import hook for a plain path entry: faster starts)
#
# --lane-host      also install what the HOST needs to run the VM lane (qemu-system-x86, qemu-utils,
#                  cpio); never pass it inside the lane's guest image or the Vagrant box.
# --test-deps      also install what the test suite uses besides nsbox itself: podman (image
#                  interop), docker-registry, skopeo, apache2-utils and openssl (registry tests),
#                  gcc and libc6-dev (a static memory hog for OOM tests), curl.
# --vagrant-guest  this machine is the Vagrant box: make sure it boots pure cgroup v2. If a v1
#                  hierarchy is mounted, add `systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all` to
#                  GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub and create
#                  /run/nsbox-reboot-required (the Vagrantfile reboots when it exists).
#                  Without this flag grub and the kernel command line are never touched.
# Env: NSBOX_VENV (default /opt/nsbox/venv), NSBOX_PIP_ARGS (extra args for pip install).
# Works without stdin; DEBIAN_FRONTEND=noninteractive is forced.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VENV=${NSBOX_VENV:-/opt/nsbox/venv}
LANE_HOST=0; VAGRANT_GUEST=0; LINK=1; TEST_DEPS=0
for a in "$@"; do
    case "$a" in
        --lane-host) LANE_HOST=1;;
        --test-deps) TEST_DEPS=1;;
        --vagrant-guest) VAGRANT_GUEST=1;;
        --no-link) LINK=0;;
        -h|--help) sed -n '2,30p' "$0"; exit 0;;
        *) echo "provision.sh: unknown option $a" >&2; exit 2;;
    esac
done
log() { echo "provision: $*"; }
[ "$(id -u)" = 0 ] || { echo "provision.sh: must run as root" >&2; exit 1; }

# ---- 1. apt packages ---------------------------------------------------------------------------
PKGS=(busybox-static iptables nftables iproute2 python3 python3-venv python3-dev catatonit
      util-linux procps kmod e2fsprogs xz-utils zstd debootstrap ca-certificates)
[ $LANE_HOST = 1 ] && PKGS+=(qemu-system-x86 qemu-utils cpio)
[ $TEST_DEPS = 1 ] && PKGS+=(podman docker-registry skopeo apache2-utils openssl gcc libc6-dev curl)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing: ${missing[*]}"
    apt-get update -qq </dev/null
    aptlog=$(mktemp)
    apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" </dev/null >"$aptlog" 2>&1 \
        || { cat "$aptlog" >&2; rm -f "$aptlog"; exit 1; }
    grep -E '^[0-9]+ upgraded, ' "$aptlog" || true; rm -f "$aptlog"
else
    log "apt packages: all present"
fi

# ---- 2. venv + editable install ----------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ] || ! grep -qx 'home = /usr/bin' "$VENV/pyvenv.cfg" 2>/dev/null \
   || ! "$VENV/bin/python" -c 'import sys' 2>/dev/null; then
    log "creating venv $VENV from /usr/bin/python3"
    rm -rf "$VENV"
    /usr/bin/python3 -m venv "$VENV"
fi
STAMP="$VENV/.nsbox-provisioned"
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $REPO"
installed_ok() {   # nsbox (from $REPO), its deps and the test extras import; pyproject unchanged
    [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] || return 1
    "$VENV/bin/python" - "$REPO" <<'EOF' 2>/dev/null
import os, sys
import click, cffi, pyroute2, rich, dockerfile_parse, pytest, hypothesis, pytest_timeout, wheel
import nsbox.runtime
sys.exit(0 if os.path.realpath(nsbox.runtime.__file__).startswith(os.path.realpath(sys.argv[1]) + "/") else 1)
EOF
}
if installed_ok; then
    log "venv: nsbox already installed from $REPO"
else
    log "pip install -e $REPO[test]"
    # setuptools>=64 and wheel in the venv itself: the VM lane re-links the editable install
    # offline with --no-build-isolation (see vagrant/vm-lane/guest-prepare.sh)
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check ${NSBOX_PIP_ARGS:-} \
        "setuptools>=64" wheel -e "$REPO[test]" </dev/null
    echo "$want" > "$STAMP"
fi
sh "$REPO/vagrant/link-source.sh" "$REPO" "$VENV"

# ---- 2c. the user whose subordinate ids `--userns auto` hands out ----------------------------------
# Like podman's `containers` user: a system account nobody logs in as; /etc/subuid and /etc/subgid
# grant it ids [2^30, 2^31 - 1), clear of rootless users' usual ranges (100000 + 65536 k) and of
# podman's 2147483647:2147483648. Left alone when it already has ranges.
getent passwd nsbox >/dev/null || useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin nsbox
for f in /etc/subuid /etc/subgid; do
    grep -q '^nsbox:' "$f" 2>/dev/null || { echo "nsbox:1073741824:1073741823" >> "$f"; log "added nsbox to $f"; }
done

# ---- 3. /usr/local/bin/nsbox -------------------------------------------------------------------
if [ $LINK = 1 ] && [ "$(readlink /usr/local/bin/nsbox 2>/dev/null)" != "$VENV/bin/nsbox" ]; then
    ln -sfn "$VENV/bin/nsbox" /usr/local/bin/nsbox
    log "linked /usr/local/bin/nsbox -> $VENV/bin/nsbox"
fi

# ---- 4. (Vagrant box only) pure cgroup v2 ------------------------------------------------------
if [ $VAGRANT_GUEST = 1 ]; then
    if ! awk '$3 == "cgroup" {found=1} END {exit !found}' /proc/mounts; then
        log "cgroups: no v1 hierarchy mounted (pure v2)"
    elif [ ! -f /etc/default/grub ]; then
        log "WARNING: cgroup v1 is mounted and there is no /etc/default/grub; add" \
            "'systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all' to the kernel command line yourself"
    else
        if ! grep -q '^GRUB_CMDLINE_LINUX=.*cgroup_no_v1=all' /etc/default/grub; then
            log "cgroup v1 is mounted: adding cgroup_no_v1=all to GRUB_CMDLINE_LINUX"
            sed -i -E 's/^GRUB_CMDLINE_LINUX="([^"]*)"/GRUB_CMDLINE_LINUX="\1 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"/' \
                /etc/default/grub
            grep -q '^GRUB_CMDLINE_LINUX=.*cgroup_no_v1=all' /etc/default/grub \
                || echo 'GRUB_CMDLINE_LINUX="systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"' >> /etc/default/grub
            update-grub
        fi
        touch /run/nsbox-reboot-required
        log "reboot required for pure cgroup v2 (/run/nsbox-reboot-required)"
    fi
fi
log "done"
