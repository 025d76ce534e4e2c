#!/usr/bin/env bash
# Builds (idempotently) a Debian guest for the kernel lab, only from Debian packages:
#   lab/build-image.sh FLAVOUR OUTDIR
# FLAVOUR: bookworm (Jool 4.1.9), trixie (Jool 4.1.13) or trixie-sid (trixie's kernel 6.12 with
# Debian sid's Jool 4.1.15: sid's own kernel cannot build it). OUTDIR receives vmlinux, initrd.cpio,
# rootfs.ext4 and jool-version; it is complete only when OUTDIR/ok exists.
set -euo pipefail
flavour=$1 out=$2
suite=${flavour%%-*}
mirror=${JOOLD_LAB_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
[ -e "$out/ok" ] && exit 0
work=$(mktemp -d "${out%/}.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
step() { printf '[lab %s] %s (%ss)\n' "$flavour" "$*" "$SECONDS" >&2; }

step "debootstrap $flavour"
debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -20 "$work/debootstrap.log" >&2; exit 1; }

printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod +x "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true; rm -rf "$work"' EXIT

step "guest packages"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  linux-image-amd64 linux-headers-amd64 dkms make gcc libc6-dev kmod \
  iproute2 iputils-ping netcat-openbsd procps tcpdump strace busybox >"$work/apt.log" 2>&1 ||
  { tail -30 "$work/apt.log" >&2; exit 1; }
kver=$(ls "$root/lib/modules" | sort -V | tail -1)

if [ "$flavour" = trixie-sid ]; then
  # Only Jool and the libnl it links against come from sid, pinned by name; everything else,
  # the kernel first, stays trixie's. sid's Release file may be past its Valid-Until date.
  step "sid's Jool pinned"
  echo "deb $mirror sid main" >"$root/etc/apt/sources.list.d/sid.list"
  printf 'Package: *\nPin: release n=sid\nPin-Priority: 100\n\nPackage: jool-dkms jool-tools libnl-3-200 libnl-genl-3-200\nPin: release n=sid\nPin-Priority: 990\n' \
    >"$root/etc/apt/preferences.d/sid-jool"
  echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99sid-valid-until"
  chroot "$root" apt-get update -qq >>"$work/apt.log" 2>&1 || { tail -30 "$work/apt.log" >&2; exit 1; }
fi

step "jool-dkms and jool-tools (kernel $kver)"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  jool-dkms jool-tools >"$work/jool.log" 2>&1 || { tail -30 "$work/jool.log" >&2; exit 1; }
if ! ls "$root/lib/modules/$kver/updates/dkms/"jool.ko* >/dev/null 2>&1; then
  chroot "$root" dkms autoinstall -k "$kver" >>"$work/jool.log" 2>&1 || true
fi
ls "$root/lib/modules/$kver/updates/dkms/"jool.ko* >/dev/null 2>&1 ||
  { echo "jool.ko was not built for $kver" >&2; tail -30 "$work/jool.log" >&2; exit 1; }
chroot "$root" dpkg-query -W -f='${Version}' jool-tools >"$work/jool-version"
umount "$root/proc"

step "kernel and initramfs"
python3 "$here/extract-vmlinux.py" "$root/boot/vmlinuz-$kver" "$work/vmlinux"
python3 "$here/make-initramfs.py" "$root" "$kver" "$work/initrd.cpio"

step "guest init"
install -m 0755 "$here/guest/stub.sh" "$root/sbin/lab-init"
# Free space for logs; no apt caches in the image.
rm -rf "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*
mkdir -p "$root/mnt/project" "$root/mnt/results" "$root/mnt/deno"

step "rootfs image"
mke2fs -q -t ext4 -d "$root" "$work/rootfs.ext4" 3G

mkdir -p "$out"
mv "$work/vmlinux" "$work/initrd.cpio" "$work/rootfs.ext4" "$work/jool-version" "$out/"
echo "$kver" >"$out/kernel-version"
touch "$out/ok"
step "done: $(cat "$out/jool-version")"
