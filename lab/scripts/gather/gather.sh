# The gather: every section at once, then a "==LAB== name rc size" line for each, "==ERR== name"
# and the base64 of the end of its stderr for each that failed, and last "==OUT==" and one base64
# of every section's stdout, one after another (the sizes split it). One round trip per node, and
# few processes: a guest under software emulation pays ~0.15 s per process start, so there is one
# watchdog for all sections (not a `timeout` each) and one base64 for all outputs (not one each).
# lab.gather.live appends one `sec NAME COMMAND` line per wanted section, then `report`.
# Bounded on the node as well as by the caller: each section by the watchdog (TERM after
# SECTION_TIMEOUT s, reported as 124 like `timeout`; KILL 2 s later, 137) and by a file size limit
# (ulimit -f, 512-byte blocks), the whole script by the `timeout` of as_root.sh; however it ends
# (done, timed out, the connection closed under it) the trap removes the temporary directory
# (root-only copies of the CIB; once every section has ended, in the background: one process
# less before the caller has its answer) and stops every process it started.
: "${BLOCKS:?}" "${SECTION_TIMEOUT:?}" "${ANSWERS_DIR:?}"

d=$(mktemp -d) || exit 1
names=""
pids=""
finished=""
# Helpers below use their own variable names: `sec` keeps n, d, names and pids in the same shell.
# Each section: a subshell that starts its command (pid in NAME.pid, for the watchdog), waits for
# it and writes its exit status to NAME.rc.
sec() {
  n=$1; shift; names="$names $n"
  ( bounded "$@" >"$d/$n.out" 2>"$d/$n.err" & echo $! >"$d/$n.pid"; wait $!; echo $? >"$d/$n.rc" ) &
  pids="$pids $!"
}
cleanup() {
  trap '' HUP INT TERM PIPE; trap - EXIT
  if [ -n "$finished" ]; then  # every section has ended: the copies go after the exit, not before
    rm -rf "$d" >/dev/null 2>&1 &
  else
    rm -rf "$d"; kill -TERM 0 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM PIPE
command -v timeout >/dev/null 2>&1 || timeout() { shift 4; "$@"; }
bounded() {  # runs in the section's own process: the limits stay there
  ulimit -c 0; ulimit -f "$BLOCKS"
  case $1 in
    answer_files|conf_file|fence_targets|node_name|sbd_facts|shadow_cibs) "$@" ;;  # shell functions: they bound their own commands
    *) exec "$@" ;;  # the command itself is the pid the watchdog stops
  esac
}
watchdog() {  # one sleep bounds every section; what is still running then is stopped
  trap 'kill "$_sleep" 2>/dev/null; exit 0' TERM
  sleep "$SECTION_TIMEOUT" & _sleep=$!; wait "$_sleep"
  _late=""
  for _s in $names; do
    [ -f "$d/$_s.rc" ] && continue
    : >"$d/$_s.late"; _late="$_late $_s"
    read -r _p <"$d/$_s.pid" && kill -TERM "$_p" 2>/dev/null
  done
  [ -n "$_late" ] || exit 0
  sleep 2 & _sleep=$!; wait "$_sleep"
  for _s in $_late; do
    [ -f "$d/$_s.rc" ] && continue
    : >"$d/$_s.killed"
    read -r _p <"$d/$_s.pid" && kill -KILL "$_p" 2>/dev/null
  done
}
node_name() {  # uname -n without a process (each costs tenths of a second in an emulated guest)
  read -r _name </proc/sys/kernel/hostname && printf '%s\n' "$_name"
}
conf_file() {  # cat FILE without a process: a regular file only (a FIFO would block), its first 5000 lines
  [ -f "$1" ] || { echo "$1: not a regular file" >&2; return 1; }
  _lines=0
  while [ "$_lines" -lt 5000 ] && { IFS= read -r _line || [ -n "$_line" ]; }; do
    printf '%s\n' "$_line"; _lines=$((_lines + 1))
  done <"$1"
}
fence_targets() {
  for _node in $(crm_node -l 2>/dev/null | awk '{print $2}'); do
    echo "==NODE== $_node"; timeout --foreground -k 2 25 stonith_admin --list "$_node" --timeout 20 2>&1
  done
  return 0
}
sbd_facts() {
  _conf=/etc/default/sbd; [ -f "$_conf" ] || _conf=/etc/sysconfig/sbd; [ -f "$_conf" ] || return 3
  echo "==CONF=="; cat "$_conf"
  echo "==ACTIVE== $(systemctl is-active sbd 2>/dev/null)"
  for _dev in $(sed -n 's/^[[:space:]]*SBD_DEVICE=//p' "$_conf" | tail -n 1 | tr -d "\"'" | tr ';' ' '); do
    echo "==LIST== $_dev"; timeout --foreground -k 2 20 sbd -d "$_dev" list 2>&1; echo "==RC== $?"
  done
}
shadow_cibs() {  # one line per crm_shadow copy: its name, then its base64 on the same line
  for _file in /var/lib/pacemaker/cib/shadow.*; do
    [ -f "$_file" ] || continue
    printf "%s " "${_file##*/shadow.}"
    timeout --foreground -k 2 "$SECTION_TIMEOUT" base64 -w 0 "$_file"; echo
  done
}
answer_files() {  # one line per answer file (regular, at most 32): its name, the base64 of its first 4 KiB
  _count=0
  for _file in "$ANSWERS_DIR"/*; do
    if [ -f "$_file" ] && [ ! -L "$_file" ] && [ "$_count" -lt 32 ]; then
      _count=$((_count + 1))
      printf "%s " "${_file##*/}"
      head -c 4096 "$_file" | base64 -w 0; echo
    fi
  done
  return 0
}
report() {  # called after the sec lines: every section's answer, in order
  watchdog >/dev/null 2>&1 </dev/null &
  _watchdog=$!
  # shellcheck disable=SC2086 # the section pids, one word each
  wait $pids
  finished=1
  kill "$_watchdog" 2>/dev/null
  cd "$d" || exit 1
  _files=""
  # Every file there, so the sizes line up. A late section's output is not read (it is a timeout)
  # and a child the watchdog did not reach may still write to it: a new, empty file in its place,
  # so its sizes and bytes, read at two moments below, cannot disagree.
  for _sec in $names; do
    [ -f "$_sec.late" ] && rm -f "$_sec.out"
    : >>"$_sec.out"; _files="$_files $_sec.out"
  done
  # shellcheck disable=SC2086 # section names are words of [A-Za-z0-9_]
  _sizes=$(wc -c $_files | while read -r _size _; do printf '%s ' "$_size"; done)
  for _sec in $names; do
    rc=""; [ -f "$_sec.rc" ] && read -r rc <"$_sec.rc"
    rc=${rc:-125}
    if [ -f "$_sec.killed" ]; then rc=137; elif [ -f "$_sec.late" ]; then rc=124; fi
    _size=${_sizes%% *}; _sizes=${_sizes#* }
    printf '==LAB== %s %s %s\n' "$_sec" "$rc" "$_size"
    if [ "$rc" != 0 ] && [ -s "$_sec.err" ]; then
      printf '==ERR== %s\n' "$_sec"; tail -c 2000 "$_sec.err" | base64 -w 0; echo
    fi
  done
  printf '==OUT==\n'
  # shellcheck disable=SC2086
  cat $_files | base64 -w 0; echo
}
