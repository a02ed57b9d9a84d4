# stonith-enabled=false with the C tool (pcs costs seconds of Python start-up per call).
set -eu
[ "$(crm_attribute -t crm_config -n stonith-enabled -q -G 2>/dev/null)" = false ] ||
  crm_attribute -t crm_config -n stonith-enabled -v false
