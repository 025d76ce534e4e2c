#!/usr/bin/env python3
"""A 2 MB busybox initramfs that loads only what mounting /dev/vda needs (virtio, ext4 and their
dependencies, taken from the guest's modules.dep) and switches to the real root."""
import lzma, os, shutil, subprocess, sys, tempfile

root, kver, dst = sys.argv[1], sys.argv[2], sys.argv[3]
moddir = f"{root}/lib/modules/{kver}"
deps = {}
for line in open(f"{moddir}/modules.dep"):
    path, _, rest = line.partition(":")
    deps[os.path.basename(path).split(".ko")[0].replace("-", "_")] = (path, rest.split())

def name(path):
    return os.path.basename(path).split(".ko")[0].replace("-", "_")

order, seen = [], set()
def add(mod):
    if mod in seen or mod not in deps:
        return
    seen.add(mod)
    for d in deps[mod][1]:
        add(name(d))
    order.append(mod)

for m in ["virtio_pci", "virtio_blk", "crc32c_generic", "crc32c_intel", "ext4"]:
    add(m)

tmp = tempfile.mkdtemp()
for d in ["bin", "dev", "proc", "sys", "newroot", "lib/modules"]:
    os.makedirs(f"{tmp}/{d}", exist_ok=True)
shutil.copy("/bin/busybox", f"{tmp}/bin/busybox")
for applet in ["sh", "mount", "insmod", "switch_root", "mkdir", "sleep", "cat", "echo"]:
    os.symlink("busybox", f"{tmp}/bin/{applet}")
for i, mod in enumerate(order):
    data = open(f"{moddir}/{deps[mod][0]}", "rb").read()
    if deps[mod][0].endswith(".xz"):
        data = lzma.decompress(data)
    elif deps[mod][0].endswith(".zst"):
        data = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    open(f"{tmp}/lib/modules/{i:02d}-{mod}.ko", "wb").write(data)
init = """#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in /lib/modules/*.ko; do insmod "$m" 2>/dev/null; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
mount -t ext4 -o rw /dev/vda /newroot || { echo "lab initramfs: cannot mount /dev/vda"; sleep 5; echo o > /proc/sysrq-trigger; }
exec switch_root /newroot /sbin/lab-init
"""
open(f"{tmp}/init", "w").write(init)
os.chmod(f"{tmp}/init", 0o755)
files = subprocess.run(["find", "."], cwd=tmp, capture_output=True, text=True, check=True).stdout
with open(dst, "wb") as f:
    subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tmp, input=files.encode(), stdout=f, check=True)
shutil.rmtree(tmp)
print(f"initramfs: {len(order)} modules: {' '.join(order)}", file=sys.stderr)
