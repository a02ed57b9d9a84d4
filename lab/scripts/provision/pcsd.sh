# hacluster's password, no leftover cluster (Debian's one-node default), pcsd enabled, up and
# answering on 2224 within PCSD_WAIT seconds; pcs waits PCS_REQUEST_TIMEOUT s for each pcsd
# (empty: pcs as shipped); prints the pcs version.
set -eu
: "${HACLUSTER_PASSWORD:?}" "${CLUSTER_NAME:?}" "${PCSD_WAIT:?}" "${PCS_REQUEST_TIMEOUT?}"
echo "hacluster:$HACLUSTER_PASSWORD" | chpasswd
if [ -e /etc/corosync/corosync.conf ] && ! grep -q "$CLUSTER_NAME" /etc/corosync/corosync.conf; then
  pcs cluster destroy --force >/dev/null 2>&1 || true
fi
install_unit_timeouts
set_pcs_request_timeout "$(pcs_settings_file)" "$PCS_REQUEST_TIMEOUT"
systemctl is-enabled -q pcsd || systemctl enable -q pcsd
start_unit pcsd
i=0
until ss -Hltn 'sport = :2224' | grep -q .; do
  i=$((i+1)); [ "$i" -le $((PCSD_WAIT * 4)) ] || { echo "pcsd does not listen on 2224 after $PCSD_WAIT s" >&2; exit 1; }
  sleep 0.25
done
# shellcheck disable=SC2016  # ${Version} is dpkg-query's field, not the shell's
dpkg-query -W -f '${Version}\n' pcs 2>/dev/null || rpm -q --qf '%{VERSION}\n' pcs
