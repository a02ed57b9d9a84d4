# start_unit UNIT: start it; after a failed start say why on stderr (a line starting
# 'failover-lab: retry', which lab up shows), clear systemd's failed state and try again, up to
# START_TRIES times (a first start under software emulation can miss systemd's timeout).
: "${START_TRIES:?}"
start_unit() {
  _try=1
  until systemctl is-active -q "$1"; do
    if _err=$(systemctl start "$1" 2>&1); then break; fi
    _why=$(systemctl show -p Result --value "$1" 2>/dev/null)
    if [ "$_try" -ge "$START_TRIES" ]; then
      echo "$1 did not start after $START_TRIES tries: $_err (result: $_why)" >&2; return 1
    fi
    echo "failover-lab: retry $1 (try $_try of $START_TRIES failed: $_err; result: $_why)" >&2
    systemctl reset-failed "$1" pcsd-ruby.service 2>/dev/null || true
    _try=$((_try+1))
  done
}
