#!/usr/bin/env bash
# Make sure libvirt answers on qemu:///system. With systemd the packages start it;
# without systemd (containers, this CI) start the daemons by hand.
set -euo pipefail
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
