#!/bin/bash
# /sbin/lab-init in the guest image: PID 1 after the initramfs. Mounts the basics and the 9p shares,
# then runs the project's own guest init from the share (so scenarios change without a rebuild).
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run
modprobe 9pnet_virtio 2>/dev/null
modprobe 9p 2>/dev/null
for tag in project results deno; do
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 "$tag" "/mnt/$tag"
done
if [ -f /mnt/project/lab/guest/init.sh ]; then
  exec /bin/bash /mnt/project/lab/guest/init.sh
fi
echo "lab-init: the project share is missing" >/dev/console
echo o >/proc/sysrq-trigger
