# stonith-enabled=false with the C tool (pcs costs seconds of Python start-up per call), and
# dc-deadtime back to its default (start_cluster.sh set it short for the first election only).
set -eu
[ "$(crm_attribute -t crm_config -n stonith-enabled -q -G 2>/dev/null)" = false ] ||
  crm_attribute -t crm_config -n stonith-enabled -v false
if crm_attribute -t crm_config -n dc-deadtime -q -G >/dev/null 2>&1; then
  crm_attribute -t crm_config -n dc-deadtime -D >/dev/null
fi
