#!/bin/sh
# Failover Lab: customize hook for mmdebstrap (runs on the host, $1 = the
# chroot).  build.sh passes BOX_ROOT_UUID, BOX_PUBKEY, BOX_HOSTNAME in the
# environment.  Every block says which pitfall it fixes.
set -eu
R="$1"
: "${BOX_ROOT_UUID:?}" "${BOX_PUBKEY:?}" "${BOX_HOSTNAME:=debian12}"
in_root() { chroot "$R" "$@"; }

# --- vagrant user: passwordless sudo, Vagrant's insecure public key --------
in_root useradd --create-home --shell /bin/bash --user-group vagrant
echo 'vagrant:vagrant' | in_root chpasswd
printf 'vagrant ALL=(ALL) NOPASSWD: ALL\nDefaults:vagrant !requiretty\n' >"$R/etc/sudoers.d/vagrant"
chmod 0440 "$R/etc/sudoers.d/vagrant"
install -d -m 0700 "$R/home/vagrant/.ssh"
install -m 0600 "$BOX_PUBKEY" "$R/home/vagrant/.ssh/authorized_keys"
in_root chown -R vagrant:vagrant /home/vagrant/.ssh

# --- root file system, boot loader configuration ---------------------------
printf 'UUID=%s / ext4 defaults,noatime,errors=remount-ro 0 0\n' "$BOX_ROOT_UUID" >"$R/etc/fstab"
kver=$(ls "$R/boot" | sed -n 's/^vmlinuz-//p' | sort -V | tail -n 1)
[ -n "$kver" ] || { echo "customize: no kernel in /boot" >&2; exit 1; }
# Small initramfs: only what a vagrant-libvirt disk needs (virtio/SATA/SCSI, ext4).
cat >"$R/etc/initramfs-tools/modules" <<'MOD'
virtio_pci
virtio_blk
virtio_scsi
sd_mod
ahci
ata_piix
ext4
MOD
in_root update-initramfs -u -k "$kver" >/dev/null
install -d "$R/boot/extlinux"
cat >"$R/boot/extlinux/extlinux.conf" <<CFG
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /boot/vmlinuz-$kver
  INITRD /boot/initrd.img-$kver
  APPEND root=UUID=$BOX_ROOT_UUID rw net.ifnames=0 console=ttyS0 quiet mitigations=off
CFG

# --- identity: hostname, hosts (no 127.0.1.1 line), machine-id --------------
echo "$BOX_HOSTNAME" >"$R/etc/hostname"
cat >"$R/etc/hosts" <<'HOSTS'
127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
HOSTS
: >"$R/etc/machine-id"                     # each clone makes its own at boot
[ -L "$R/var/lib/dbus/machine-id" ] || rm -f "$R/var/lib/dbus/machine-id"
rm -f "$R/var/lib/systemd/random-seed" "$R/var/lib/systemd/credential.secret"

# --- network: eth0 by DHCP (ifupdown), no DNS servers, no NTP --------------
cat >"$R/etc/network/interfaces" <<'NET'
# Failover Lab box.  Vagrant appends its private networks below.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
NET
# dhclient must not ask for, nor write, DNS or NTP servers.
sed -i -e 's/\bdomain-name-servers, *//; s/\bdomain-search, *//; s/\bdhcp6\.name-servers, *//' \
       -e 's/\bdhcp6\.domain-search, *//; s/\bdhcp6\.sntp-servers, *//; s/, *ntp-servers//' \
       "$R/etc/dhcp/dhclient.conf"
install -d "$R/etc/dhcp/dhclient-enter-hooks.d"
printf '# Failover Lab: never write /etc/resolv.conf\nmake_resolv_conf() { :; }\n' \
  >"$R/etc/dhcp/dhclient-enter-hooks.d/failover-lab-no-dns"
rm -f "$R/etc/resolv.conf"
printf '# Failover Lab: no DNS servers on purpose; names come from /etc/hosts.\n' >"$R/etc/resolv.conf"
sed -i 's/^hosts:.*/hosts:          files/' "$R/etc/nsswitch.conf"

# --- ssh: no baked host keys (new ones at first boot), no reverse DNS -------
rm -f "$R"/etc/ssh/ssh_host_*
cat >"$R/etc/ssh/sshd_config.d/failover-lab.conf" <<'SSHD'
UseDNS no
GSSAPIAuthentication no
PermitRootLogin no
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
SSHD
# Debian's pam_motd (motd=/run/motd.dynamic) runs run-parts /etc/update-motd.d on every SSH
# session: 0.2 s of each connection under software emulation (checks, lab ssh, provisioning).
# The static motd stays (the `noupdate` line); RHEL's pam_motd runs no scripts.
sed -i '/pam_motd\.so[[:space:]]*motd=\/run\/motd\.dynamic/d' "$R/etc/pam.d/sshd"
grep -q 'pam_motd.so.*motd=/run/motd.dynamic' "$R/etc/pam.d/sshd" && { echo "customize: dynamic pam_motd still in /etc/pam.d/sshd" >&2; exit 1; }
cat >"$R/etc/systemd/system/failover-lab-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate this clone's SSH host keys (Failover Lab)
DefaultDependencies=no
After=local-fs.target
Before=ssh.service
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
RemainAfterExit=yes
# ed25519 + ecdsa only: an RSA key takes many seconds under software emulation.
ExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key
ExecStart=/usr/bin/ssh-keygen -q -t ecdsa -N "" -f /etc/ssh/ssh_host_ecdsa_key

[Install]
WantedBy=multi-user.target
RequiredBy=ssh.service
UNIT

# pcsd's own first start makes an RSA-3072 key for its TLS certificate (5 s in an emulated
# guest, on lab up's critical path): each clone makes its own EC key before pcsd starts instead
# (pcsd only checks that the pair loads; `pcs pcsd certkey` replaces it as usual).
cat >"$R/etc/systemd/system/failover-lab-pcsd-cert.service" <<'UNIT'
[Unit]
Description=Generate this clone's pcsd TLS certificate (Failover Lab)
After=local-fs.target
Before=pcsd.service
ConditionPathExists=!/var/lib/pcsd/pcsd.key

[Service]
Type=oneshot
RemainAfterExit=yes
UMask=0077
ExecStart=/usr/bin/install -d -m 0700 /var/lib/pcsd
ExecStart=/usr/bin/openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
  -subj /O=pcsd/OU=pcsd/CN=%H -keyout /var/lib/pcsd/pcsd.key -out /var/lib/pcsd/pcsd.crt

[Install]
WantedBy=multi-user.target
UNIT

# --- cluster services: no Debian one-node corosync.conf, no autostart -------
rm -f "$R/etc/corosync/corosync.conf"
# sbd's package enables it, and corosync requires an enabled sbd: without a configured
# disk or watchdog it fails and takes corosync with it. The sbd exercise enables it.
in_root systemctl disable corosync.service pacemaker.service sbd.service >/dev/null 2>&1
in_root systemctl enable pcsd.service failover-lab-ssh-hostkeys.service failover-lab-pcsd-cert.service >/dev/null 2>&1
# systemd applies presets on a first boot (empty machine-id): keep them in line.
install -d "$R/etc/systemd/system-preset"
cat >"$R/etc/systemd/system-preset/00-failover-lab.preset" <<'PRESET'
disable corosync.service
disable pacemaker.service
disable sbd.service
enable pcsd.service
enable failover-lab-ssh-hostkeys.service
enable failover-lab-pcsd-cert.service
PRESET

# --- start timeouts that fit software emulation ------------------------------
# A first start of pcsd-ruby took more than systemd's default 90 s in an emulated guest
# (then "Dependency failed for pcsd.service"). lab/vm/provision.py (LAB_UNITS,
# UNIT_START_TIMEOUT) installs the same drop-in on boxes without it.
for u in pcsd-ruby pcsd corosync pacemaker; do
  install -d "$R/etc/systemd/system/$u.service.d"
  printf '# Failover Lab: starts under software emulation can take minutes\n[Service]\nTimeoutStartSec=300\n' \
    >"$R/etc/systemd/system/$u.service.d/50-failover-lab-timeout.conf"
done

# --- quiet, fast boot: no timers that touch the network or the disk --------
for u in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
         dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer \
         man-db.timer systemd-timesyncd.service systemd-networkd-wait-online.service \
         getty@tty1.service; do
  in_root systemctl mask "$u" >/dev/null 2>&1
done
printf 'LANG=C.UTF-8\n' >"$R/etc/default/locale"

# --- smaller box: drop kernel modules no VM of the lab can use -------------
# (sound, graphics, media, wireless, bluetooth, infiniband, staging, iio):
# about 200 MB less to copy into libvirt for every new machine.
kdir="$R/usr/lib/modules/$kver/kernel"
for d in sound drivers/gpu drivers/media drivers/net/wireless drivers/infiniband \
         drivers/staging drivers/iio drivers/bluetooth drivers/isdn \
         net/wireless net/mac80211 net/bluetooth; do
  rm -rf "${kdir:?}/$d"
done
in_root depmod "$kver"

# --- leave nothing host-specific or cached behind ---------------------------
rm -f "$R"/var/cache/apt/archives/*.deb
rm -rf "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/* "$R"/tmp/* "$R"/var/tmp/*
find "$R/var/log" -type f -exec truncate -s 0 {} +
