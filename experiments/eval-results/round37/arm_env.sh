#!/bin/sh
# arm_env.sh ROOT: an emulated aarch64 Debian 12 with metagen installed, on an x86-64 host (as root).
# Needs the Debian packages qemu-user-static, debootstrap and binfmt-support, and a Debian mirror
# in $DEBIAN_MIRROR (the one apt uses here). /sys stays unmounted in the chroot: with the host's
# /sys, torch's cpuinfo reads x86 CPU lists and `import torch` segfaults under qemu 7.2.
set -e
root=$1
debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$DEBIAN_MIRROR"
cp /etc/resolv.conf "$root/etc/"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
git clone -q /work/main "$root/repo"
chroot "$root" sh -c 'python3 -m venv /venv && cd /repo && /venv/bin/pip install -q -e ".[test]"'
