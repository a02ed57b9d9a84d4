#!/usr/bin/env bash
# Make sure libvirt answers on qemu:///system. With systemd the packages start it;
# without systemd (containers, this CI) start the daemons by hand.
set -euo pipefail
# Without udev (containers, this CI) /dev/kvm keeps the kernel's root-only 0600: libvirt probes
# QEMU's capabilities with KVM but checks them against its QEMU user, who cannot open the device,
# so the cache is never valid and every libvirt call probes again (6-16 s each; about three
# minutes of a `lab up`; `lab doctor` says so). udev's own rule: group kvm, mode 0660.
if [ -c /dev/kvm ] && getent group kvm >/dev/null && [ "$(stat -c %G /dev/kvm)" = root ]; then
  chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
if virsh -c qemu:///system uri >/dev/null 2>&1; then exit 0; fi
if [ -d /run/systemd/system ]; then
  systemctl start libvirtd virtlogd
else
  pgrep -x virtlogd >/dev/null || virtlogd -d
  pgrep -x libvirtd >/dev/null || libvirtd -d
fi
for _ in $(seq 1 50); do
  virsh -c qemu:///system uri >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "libvirt does not answer on qemu:///system" >&2
exit 1
