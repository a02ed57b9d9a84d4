# install_unit_timeouts: give every lab unit (LAB_UNITS) the lab's start timeout with a systemd
# drop-in (UNIT_DROPIN, naming UNIT_START_TIMEOUT), for boxes that do not ship it (EL, older
# builds); systemd reloads only when a drop-in was written. ROOT prefixes the paths (tests).
: "${LAB_UNITS:?}" "${UNIT_START_TIMEOUT:?}" "${UNIT_DROPIN:?}" "${ROOT?}"
install_unit_timeouts() {
  local reload=0 unit dir units
  read -ra units <<<"$LAB_UNITS"
  for unit in "${units[@]}"; do
    dir=$ROOT/etc/systemd/system/$unit.service.d
    grep -qsx "TimeoutStartSec=$UNIT_START_TIMEOUT" "$dir/50-failover-lab-timeout.conf" && continue
    install -d "$dir"; printf '%s' "$UNIT_DROPIN" >"$dir/50-failover-lab-timeout.conf"; reload=1
  done
  [ "$reload" -eq 0 ] || systemctl daemon-reload
}
