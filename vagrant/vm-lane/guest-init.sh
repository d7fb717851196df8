#!/bin/sh
# Stage 2: PID 1 inside the lane's Debian image (/sbin/vmrun-init; adapted from the vmprobe recipe).
# Mounts a pure cgroup v2 hierarchy (the kernel runs with cgroup_no_v1=all), the 9p control share
# at /run/lane and the shares it lists (each at its host path), runs the lane's prepare step and the
# command as root, writes the exit status to /run/lane/rc and powers off.
HOME=/root
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME LANG=C.UTF-8 TERM=dumb
export NSBOX_VM_LANE=1
BB=/bin/busybox
P9OPTS=trans=virtio,version=9p2000.L,msize=512000
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
ln -sf /proc/self/fd /dev/fd; ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout; ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /run/lane
if ! mount -t 9p -o $P9OPTS lane /run/lane; then
    echo "lane-init: cannot mount the control share"; $BB poweroff -f
fi
: > /run/lane/booted
while read -r tag path; do
    [ -n "$tag" ] || continue
    mkdir -p "$path" && mount -t 9p -o $P9OPTS "$tag" "$path" || echo "lane-init: mount $tag at $path failed"
done < /run/lane/shares
$BB hostname vm
ip link set lo up
stty -F /dev/ttyS1 raw -echo 2>/dev/null
# stdout+stderr of prepare + command go through a pipe to ttyS1 (the host's qemu stdout)
{
    rc=0
    if [ -s /run/lane/prepare ]; then /bin/sh /run/lane/prepare </dev/null 2>&1 || rc=$?; fi
    if [ $rc = 0 ]; then
        cd "$(cat /run/lane/cwd)" 2>/dev/null || cd /
        /bin/sh /run/lane/cmd </dev/null 2>&1; rc=$?
    else
        echo "lane-init: prepare step failed (rc=$rc)"
    fi
    echo $rc > /run/lane/rc
} | cat > /dev/ttyS1
sync
$BB poweroff -f
