# pcs_settings_file: the settings.py of the pcs this node runs (found through pcs's own
# interpreter, so Debian's python3 and EL8's platform-python alike); nothing when there is none.
pcs_settings_file() {
  local pcs interp
  pcs=$(command -v pcs) || return 0
  read -r interp _ < <(sed -n '1s/^#![[:space:]]*//p' "$pcs") || true
  [ -n "$interp" ] || return 0
  "$interp" -c 'import pcs.settings as s; print(s.__file__)' 2>/dev/null | grep -x '.*\.py' || true
}

# set_pcs_request_timeout FILE SECONDS: pcs waits SECONDS (not its built-in 60) for each request
# to a pcsd; SECONDS empty = pcs as shipped. `pcs cluster setup` has no --request-timeout, and
# its first request (pcsd runs `pcs cluster destroy`) takes 60-80 s in a guest under software
# emulation. The lab's line ends with its marker: re-running replaces it, never adds a second.
set_pcs_request_timeout() {
  local file=$1 seconds=$2 marker='# failover-lab: slow guests'
  [ -n "$file" ] && [ -f "$file" ] || return 0
  if [ -z "$seconds" ]; then
    grep -qF "$marker" "$file" || return 0
    sed -i "/$marker\$/d" "$file"
  elif ! grep -qx "default_request_timeout = $seconds  $marker" "$file"; then
    sed -i "/$marker\$/d" "$file"
    printf 'default_request_timeout = %s  %s\n' "$seconds" "$marker" >>"$file"
  fi
}
