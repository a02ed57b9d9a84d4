# Install corosync.conf, both authkeys and pcsd's known hosts from stdin, owners and modes as pcs
# sets them. Stdin: corosync key, pacemaker key, known-hosts, corosync.conf (each base64 on one
# line). A half-configured node (an interrupted run) is stopped first. ROOT prefixes every path
# (tests install into a scratch directory, and no service is touched).
set -eu
: "${ROOT?}"
C=$ROOT/etc/corosync P=$ROOT/etc/pacemaker K=$ROOT/var/lib/pcsd
read -r corosync_key; read -r pacemaker_key; read -r known_hosts; read -r conf
[ -n "$ROOT" ] || systemctl stop pacemaker corosync 2>/dev/null || true
install -d -m 0755 "$C" "$P"
put "$corosync_key" "$C/authkey" 0400 root:root
put "$pacemaker_key" "$P/authkey" 0440 hacluster:haclient
if [ -n "$known_hosts" ]; then
  install -d -m 0700 "$K"
  put "$known_hosts" "$K/known-hosts" 0600 root:root
fi
put "$conf" "$C/corosync.conf" 0644 root:root
