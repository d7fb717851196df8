#!/bin/bash
# build-image.sh OUTDIR: build the VM lane's guest (Debian bookworm, pure cgroup v2) into OUTDIR:
#   vmlinuz          the Debian kernel ($KERNEL_PKG, e.g. linux-image-6.12.x+deb12-amd64)
#   initrd.cpio.gz   busybox stage-1 initramfs: virtio/ext4/9p modules, mounts /dev/vda, switch_root
#   root.img         ext4 root filesystem: debootstrap minbase + vagrant/provision.sh run in a chroot
#                    (so the venv /opt/nsbox/venv and all apt packages come from the real install script)
# Called by lane.py (which picks OUTDIR from the cache key); can be run by hand too.
# Env: KERNEL_PKG (default: resolved from KERNEL_META, default linux-image-6.12-amd64),
#      MIRROR (default http://deb.debian.org/debian), SUITE (bookworm).
# All mounts are made in a private mount namespace (unshare -m), so they vanish when this script
# exits, even if it is killed; an EXIT trap unmounts them explicitly as well.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
[ $# = 1 ] || { echo "usage: build-image.sh OUTDIR" >&2; exit 2; }
OUT=$(realpath -m "$1")
if [ "${NSBOX_LANE_UNSHARED:-}" != 1 ]; then
    NSBOX_LANE_UNSHARED=1 exec unshare -m --propagation private "$0" "$@"
fi
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SUITE=${SUITE:-bookworm}
KMETA=${KERNEL_META:-linux-image-6.12-amd64}
KPKG=${KERNEL_PKG:-$(apt-cache depends "$KMETA" | awk '/Depends: linux-image-/{print $2; exit}')}
[ -n "$KPKG" ] || { echo "build-image: cannot resolve $KMETA (run apt-get update)" >&2; exit 1; }
W="$OUT/work"; RF="$W/rootfs"
mkdir -p "$OUT"; rm -rf "$W"; mkdir -p "$W"
t0=$SECONDS
step() { echo "build-image: [$((SECONDS - t0))s] $*"; }

MOUNTS=()
cleanup() {
    local i
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
mnt() { mount "$@"; MOUNTS+=("${@: -1}"); }

# 1. kernel package (downloaded on the host with its apt configuration)
step "kernel $KPKG"
(cd "$W" && apt-get download -q -o APT::Sandbox::User=root "$KPKG" </dev/null >/dev/null)
mkdir "$W/kpkg"; dpkg-deb -x "$W"/"$KPKG"_*.deb "$W/kpkg"
KVER=$(ls "$W/kpkg/lib/modules" | head -1)
depmod -b "$W/kpkg" "$KVER"
cp "$W/kpkg/boot/vmlinuz-$KVER" "$OUT/vmlinuz.new"

# 2. debootstrap
step "debootstrap $SUITE"
debootstrap --variant=minbase "$SUITE" "$RF" "$MIRROR" >"$W/debootstrap.log" 2>&1 \
    || { tail -n 30 "$W/debootstrap.log" >&2; exit 1; }
cat > "$RF/etc/apt/sources.list" <<SRC
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb ${MIRROR%/debian}/debian-security $SUITE-security main
SRC
# same apt tolerance as the host (snapshot mirrors may serve expired Release files)
printf 'Acquire::Check-Valid-Until "false";\n' > "$RF/etc/apt/apt.conf.d/99nsbox-lane"
cp -L /etc/resolv.conf "$RF/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$RF/usr/sbin/policy-rc.d"; chmod 0755 "$RF/usr/sbin/policy-rc.d"

# 3. provision inside the chroot with the real install script (repo bind-mounted at its own path)
step "chroot: vagrant/provision.sh"
mnt -t proc proc "$RF/proc"
mnt -t sysfs sysfs "$RF/sys"
mnt --rbind /dev "$RF/dev"
mkdir -p "$RF$REPO"
mnt --bind "$REPO" "$RF$REPO"
# read-write: setuptools writes nsbox.egg-info into the source tree (gitignored), as on the host
# the chroot sees a clean environment, plus the host's pip/proxy settings that matter for reaching
# PyPI (e.g. a TLS-intercepting proxy whose CA bundle the host gives pip through PIP_CERT)
CENV=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8)
for v in http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY PIP_INDEX_URL PIP_DEFAULT_TIMEOUT; do
    [ -n "${!v:-}" ] && CENV+=("$v=${!v}")
done
PIPCERT=${PIP_CERT:-$(/opt/nsbox/venv/bin/python -m pip config list 2>/dev/null | sed -n "s/^global\.cert='\(.*\)'\$/\1/p" | tail -n 1 || true)}
if [ -n "$PIPCERT" ] && [ -f "$PIPCERT" ]; then
    cp "$PIPCERT" "$RF/etc/nsbox-host-ca.crt"; CENV+=(PIP_CERT=/etc/nsbox-host-ca.crt)
fi
env -i "${CENV[@]}" chroot "$RF" /bin/bash "$REPO/vagrant/provision.sh" </dev/null
# a second run must be a fast no-op (idempotence is part of the contract)
t1=$SECONDS
again=$(env -i "${CENV[@]}" chroot "$RF" /bin/bash "$REPO/vagrant/provision.sh" </dev/null)
grep -q 'nsbox already installed' <<<"$again" && grep -q 'apt packages: all present' <<<"$again" \
    || { printf '%s\n' "$again" >&2; echo "build-image: second provision.sh run was not a no-op" >&2; exit 1; }
step "provision.sh re-run (no-op): $((SECONDS - t1))s"
chroot "$RF" apt-get clean
cleanup; MOUNTS=()
rmdir -p --ignore-fail-on-non-empty "$RF$REPO" 2>/dev/null || true
rm -f "$RF/usr/sbin/policy-rc.d" "$RF/etc/nsbox-host-ca.crt"
rm -rf "$RF/var/lib/apt/lists/"* "$RF/root/.cache" "$RF/var/cache/apt/"*.bin

# 4. guest PID 1, kernel modules, identity
install -m 0755 "$HERE/guest-init.sh" "$RF/sbin/vmrun-init"
rm -rf "$RF/lib/modules"; mkdir -p "$RF/lib/modules"
cp -a "$W/kpkg/lib/modules/$KVER" "$RF/lib/modules/"
echo vm > "$RF/etc/hostname"
printf '127.0.0.1 localhost vm\n::1 localhost\n' > "$RF/etc/hosts"
printf 'nameserver 127.0.0.1\n' > "$RF/etc/resolv.conf"     # the guest has no network

# 5. ext4 image (free space for container images/layers written by the tests)
step "mkfs.ext4"
SZ=$(( $(du -sm "$RF" | cut -f1) * 12 / 10 + 1536 ))
rm -f "$OUT/root.img.new"
mkfs.ext4 -q -F -L nsboxlane -d "$RF" "$OUT/root.img.new" "${SZ}M"

# 6. stage-1 initramfs
step "initramfs"
R="$W/initrd"
mkdir -p "$R"/bin "$R"/proc "$R"/sys "$R"/dev "$R"/newroot "$R/lib/modules/$KVER"
cp /bin/busybox "$R/bin/busybox"
for a in $("$R/bin/busybox" --list); do [ -e "$R/bin/$a" ] || ln -s busybox "$R/bin/$a"; done
for m in virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p overlay; do
    modprobe -d "$W/kpkg" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | sort -u | while read -r ko; do
    install -D -m 0644 "$ko" "$R/lib/modules/$KVER/${ko#*/lib/modules/$KVER/}"
done
find "$R/lib/modules" -name '*.ko.xz' -exec xz -d {} +
find "$R/lib/modules" -name '*.ko.zst' -exec zstd -q -d --rm {} +
cp "$W/kpkg/lib/modules/$KVER"/modules.builtin* "$W/kpkg/lib/modules/$KVER/modules.order" "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
install -m 0755 "$HERE/init-stage1.sh" "$R/init"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -1) > "$OUT/initrd.cpio.gz.new"

mv "$OUT/vmlinuz.new" "$OUT/vmlinuz"; mv "$OUT/initrd.cpio.gz.new" "$OUT/initrd.cpio.gz"
mv "$OUT/root.img.new" "$OUT/root.img"
echo "$KVER" > "$OUT/kernel-release"
rm -rf "$W"
step "done: $(du -sh "$OUT" | cut -f1) in $OUT"
