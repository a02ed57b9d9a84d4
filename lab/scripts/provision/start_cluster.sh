# Start corosync, then pacemaker, on this node (what `pcs cluster start` does locally), each
# retried after a timed-out start. A first start (no cib.xml in ROOT/var/lib/pacemaker/cib yet)
# begins with the CIB pacemaker makes itself (`cibadmin --empty`) plus dc-deadtime=DC_DEADTIME: a new
# cluster's controllers otherwise wait dc-deadtime's default 20 s before they elect a DC (18 s
# measured from S_PENDING to the election in a lab). lab up deletes it again once the DC is
# elected (stonith.sh). pacemaker-based warns once that the file has no digest (.sig) yet.
set -eu
: "${DC_DEADTIME:?}" "${ROOT?}"
CIB_DIR=$ROOT/var/lib/pacemaker/cib
if [ ! -e "$CIB_DIR/cib.xml" ]; then
  cib=$(mktemp)
  cibadmin --empty >"$cib"
  CIB_file=$cib crm_attribute -t crm_config -n dc-deadtime -v "$DC_DEADTIME"
  install -o hacluster -g haclient -m 0600 "$cib" "$CIB_DIR/cib.xml"
  rm -f "$cib"
fi
install_unit_timeouts
start_unit corosync
start_unit pacemaker
