#!/bin/bash
# Build the Failover Lab Debian 12 vagrant-libvirt box offline, from Debian
# packages only:  boxes/debian12/output/debian12.box
#
#   sudo boxes/debian12/build.sh [--force]
#
# Needs root, mmdebstrap, e2fsprogs, fdisk (sfdisk), util-linux (losetup,
# partx), extlinux, syslinux-common (mbr.bin), qemu-utils, the Debian vagrant
# package (for its insecure public key).  See boxes/README.md.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# Built boxes live outside the source tree, so fresh clones (and CI) reuse them.
OUT="${LAB_BOX_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/failover-lab/boxes}/debian12"
WORK="$OUT/work"
BOX="$OUT/debian12.box"
HASH_FILE="$OUT/debian12.box.recipe-sha256"
SUITE=bookworm
DISK_GB=${BOX_DISK_GB:-8}
PACKAGES=(
  systemd systemd-sysv udev dbus kmod linux-image-amd64 initramfs-tools
  openssh-server sudo ifupdown isc-dhcp-client netbase iproute2 iputils-ping
  iptables procps less cron openssl
  pacemaker corosync pcs crmsh resource-agents fence-agents fence-virt sbd
)

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "build.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done

T0=$(date +%s)
step() { printf '[box %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
die() { echo "build.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (loop devices, mount, mmdebstrap)"
for tool in mmdebstrap sfdisk partx losetup mkfs.ext4 extlinux qemu-img tar sha256sum; do
  command -v "$tool" >/dev/null || die "missing tool: $tool"
done

# --- inputs ------------------------------------------------------------------
# Package source: the very apt sources the host uses (Debian archive entries of
# /etc/apt/sources.list{,.d/*}); BOX_MIRRORS (space separated files or URLs)
# overrides.
MIRRORS=()
if [ -n "${BOX_MIRRORS:-}" ]; then
  read -r -a MIRRORS <<<"$BOX_MIRRORS"
else
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] || continue
    grep -Eq '^[[:space:]]*(deb[[:space:]]|URIs:).*debian' "$f" || continue
    grep -Eq "^[[:space:]]*(deb[[:space:]].*[[:space:]]$SUITE([[:space:]]|\$)|Suites:.*\b$SUITE\b)" "$f" || continue
    MIRRORS+=("$f")
  done
fi
[ "${#MIRRORS[@]}" -gt 0 ] || die "no Debian $SUITE apt source found on the host; set BOX_MIRRORS"
PUBKEY=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | sort -V | tail -n 1 || true)
[ -n "$PUBKEY" ] || die "Vagrant's insecure public key not found (install the Debian vagrant package)"
MBR=""
for m in /usr/lib/syslinux/mbr/mbr.bin /usr/lib/EXTLINUX/mbr.bin; do [ -f "$m" ] && { MBR=$m; break; }; done
[ -n "$MBR" ] || die "mbr.bin not found: apt-get install syslinux-common"

# --- recipe hash: skip the build when nothing changed --------------------------
recipe_hash() {
  {
    for f in "$HERE/build.sh" "$HERE/customize.sh" "$PUBKEY" "$MBR"; do
      printf '== %s\n' "$(basename "$f")"; cat "$f"
    done
    for f in "${MIRRORS[@]}"; do
      printf '== mirror %s\n' "$f"; if [ -f "$f" ]; then cat "$f"; fi
    done
    printf '== disk %s\n' "$DISK_GB"
  } | sha256sum | cut -d' ' -f1
}
HASH=$(recipe_hash)
if [ "$FORCE" = 0 ] && [ -f "$BOX" ] && [ "$(cat "$HASH_FILE" 2>/dev/null)" = "$HASH" ]; then
  step "up to date: $BOX (recipe $HASH); use --force to rebuild"
  exit 0
fi

# --- scratch space, cleanup on any exit ----------------------------------------
LOOP=""
MNT="$WORK/mnt"
cleanup() {
  set +e
  if mountpoint -q "$MNT" 2>/dev/null; then umount -R "$MNT" || umount -l "$MNT"; fi
  if [ -n "$LOOP" ]; then losetup -d "$LOOP"; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$WORK"; mkdir -p "$WORK" "$MNT" "$OUT"
RAW="$WORK/disk.raw"
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)

step "mirrors: ${MIRRORS[*]}"
step "1/6 disk image: ${DISK_GB}G raw, one bootable partition"
truncate -s "${DISK_GB}G" "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk --quiet "$RAW"
dd if="$MBR" of="$RAW" bs=440 count=1 conv=notrunc status=none
LOOP=$(losetup --find --show --partscan "$RAW")
PART="${LOOP}p1"
[ -b "$PART" ] || partx --add "$LOOP"          # no udev: ask the kernel directly
for _ in 1 2 3 4 5 6 7 8 9 10; do [ -b "$PART" ] && break; sleep 0.5; done
[ -b "$PART" ] || die "partition device $PART did not appear"

step "2/6 ext4 without 64bit and metadata_csum (extlinux cannot read them)"
mkfs.ext4 -q -F -L debian12 -U "$ROOT_UUID" -O '^64bit,^metadata_csum,^metadata_csum_seed,^orphan_file' "$PART"
mount "$PART" "$MNT"

step "3/6 mmdebstrap $SUITE minbase + cluster packages, customize (takes a while)"
export BOX_ROOT_UUID="$ROOT_UUID" BOX_PUBKEY="$PUBKEY" BOX_HOSTNAME=debian12
include=$(IFS=,; echo "${PACKAGES[*]}")
# --format=tar: mmdebstrap would otherwise guess the format from the target name.
mmdebstrap --variant=minbase --format=tar --mode=root --logfile="$OUT/mmdebstrap.log" \
  --include="$include" \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --essential-hook='mkdir -p "$1/etc/initramfs-tools/conf.d" && printf "MODULES=list\nCOMPRESS=gzip\n" >"$1/etc/initramfs-tools/conf.d/failover-lab.conf"' \
  --customize-hook="$HERE/customize.sh" \
  "$SUITE" - "${MIRRORS[@]}" \
  | tar -x -p --numeric-owner --xattrs --xattrs-include='*' -C "$MNT" \
  || { tail -n 30 "$OUT/mmdebstrap.log" >&2; die "mmdebstrap failed (log: $OUT/mmdebstrap.log)"; }

step "4/6 extlinux + MBR"
extlinux --install "$MNT/boot/extlinux" >/dev/null 2>&1 || extlinux --install "$MNT/boot/extlinux"
sync
umount "$MNT"
# The boot sector must know where its partition starts ("hidden sectors" at
# byte 28 of the partition's first sector).  extlinux asks the block device
# (HDIO_GETGEO), which loop devices do not answer, so it writes 0: set 2048.
hidden=$(od -An -tu4 -j $((2048 * 512 + 28)) -N4 "$RAW" | tr -d ' ')
if [ "$hidden" != 2048 ]; then
  printf '\x00\x08\x00\x00' | dd of="$RAW" bs=1 seek=$((2048 * 512 + 28)) conv=notrunc status=none
  hidden=$(od -An -tu4 -j $((2048 * 512 + 28)) -N4 "$RAW" | tr -d ' ')
  [ "$hidden" = 2048 ] || die "could not set hidden sectors (read back $hidden)"
fi
losetup -d "$LOOP"; LOOP=""

step "5/6 qcow2"
qemu-img convert -O qcow2 "$RAW" "$WORK/box.img"
rm -f "$RAW"

step "6/6 box tarball"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":%s}\n' "$DISK_GB" >"$WORK/metadata.json"
cat >"$WORK/Vagrantfile" <<'VF'
# Failover Lab Debian 12 box.  Driver, memory, CPUs and networks are set by
# the lab's own Vagrantfile.
Vagrant.configure("2") do |config|
  config.vm.provider :libvirt do |libvirt|
    libvirt.disk_bus = "virtio"
    libvirt.nic_model_type = "virtio"
  end
end
VF
rm -f "$BOX" "$HASH_FILE"
tar -C "$WORK" -cf "$BOX.part" metadata.json Vagrantfile box.img
mv "$BOX.part" "$BOX"
echo "$HASH" >"$HASH_FILE"
step "done: $BOX ($(du -h "$BOX" | cut -f1)); vagrant box add --force --name failover-lab/debian12 $BOX"
