#!/usr/bin/env bash
# Host packages Failover Lab needs on Debian/Ubuntu (run as root or with sudo).
# Fedora/EL hosts: dnf install vagrant vagrant-libvirt libvirt-daemon-kvm qemu-kvm qemu-img
#   pacemaker-cli pcs crmsh python3-devel libvirt-devel gcc openssh-server (the last five
#   only for grading saved CIBs and running the tests).
set -euo pipefail
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
packages=(
  # the VM lab
  vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  qemu-system-x86 qemu-utils dnsmasq-base iptables ebtables
  # the host side of the fencing exercise (fence_xvm in the guests asks it to reset a VM)
  fence-virtd
  # building the offline Debian 12 box
  mmdebstrap extlinux syslinux-common e2fsprogs fdisk
  # grading saved CIBs locally, and the tests' real cluster states
  pacemaker pacemaker-cli-utils pcs crmsh resource-agents
  # python bindings and the tests' loopback sshd
  libvirt-dev pkg-config gcc python3-dev openssh-server openssh-client
  # the tests: every node script (lab/scripts) is shellcheck-clean
  shellcheck
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "Installing host packages: ${missing[*]}" >&2
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
