#!/bin/sh
# Stage 1 (/init of the lane initramfs, from the vmprobe recipe): load the virtio/ext4/9p modules of the
# Debian kernel, mount the ext4 root image (/dev/vda), switch_root into /sbin/vmrun-init.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p overlay; do
    modprobe "$m" || echo "stage1: modprobe $m failed"
done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
mkdir -p /newroot
if ! mount -t ext4 -o rw /dev/vda /newroot; then
    echo "stage1: cannot mount /dev/vda"; ls /dev; poweroff -f
fi
umount /proc /sys /dev
exec switch_root /newroot /sbin/vmrun-init
