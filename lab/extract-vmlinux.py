#!/usr/bin/env python3
"""Extracts the uncompressed ELF vmlinux from a bzImage (xz or zstd), like the kernel's
scripts/extract-vmlinux: QEMU boots it through its PVH note, skipping the decompression."""
import lzma, subprocess, sys

src, dst = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
magics = [(b"\xfd7zXZ\x00", "xz"), (b"\x28\xb5\x2f\xfd", "zstd")]
for magic, kind in magics:
    start = 0
    while (i := data.find(magic, start)) >= 0:
        start = i + 1
        try:
            if kind == "xz":
                out = lzma.LZMADecompressor().decompress(data[i:])
            else:
                out = subprocess.run(["zstd", "-dc"], input=data[i:], capture_output=True).stdout
        except Exception:
            continue
        if out[:4] == b"\x7fELF":
            open(dst, "wb").write(out)
            sys.exit(0)
sys.exit(f"no compressed ELF found in {src}")
