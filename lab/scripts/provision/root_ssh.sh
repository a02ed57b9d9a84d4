# root's SSH key, authorized on every node, and the nodes' pinned host keys: crmsh's cluster
# commands reach every node, this one included, as root over SSH, as after `crm cluster init`.
# Also the lab's own public key (the host's): the grader logs in as root and needs no sudo (one
# sudo costs about a second under software emulation). Stdin: the private key, the public key
# line, known_hosts (private key and known_hosts in base64 on one line), then the lab's public key
# line (may be empty). ROOT prefixes every path (tests install into a scratch directory, and sshd
# is left alone).
set -eu
: "${ROOT?}"
S=$ROOT/root/.ssh D=$ROOT/etc/ssh/sshd_config.d
read -r key; read -r pub; read -r known; read -r lab_pub || lab_pub=""
umask 077
install -d -m 0700 "$S"
put "$key" "$S/id_ed25519" 0600 root:root
printf '%s\n' "$pub" >"$S/id_ed25519.pub"
for line in "$pub" "$lab_pub"; do
  [ -n "$line" ] || continue
  grep -qxF "$line" "$S/authorized_keys" 2>/dev/null || printf '%s\n' "$line" >>"$S/authorized_keys"
done
put "$known" "$S/known_hosts" 0600 root:root
# Key-only root login (the box says no); sshd takes the first value, and 00- sorts first.
if [ -d "$D" ] && ! [ -e "$D/00-failover-lab-root.conf" ]; then
  echo 'PermitRootLogin prohibit-password' >"$D/00-failover-lab-root.conf"
  [ -n "$ROOT" ] || systemctl reload ssh 2>/dev/null || systemctl reload sshd
fi
