# The gather: every section at once, then each printed as "==LAB== name rc" and the base64 of its
# stdout ("==ERR== name" and the end of its stderr when it failed). One round trip per node: a
# guest under software emulation pays ~0.3 s per process start.
# lab.gather.live appends one `sec NAME COMMAND` line per wanted section, then `report`.
# Bounded on the node as well as by the caller: each section's command by `timeout` and by a
# file size limit (ulimit -f, 512-byte blocks), the whole script by the `timeout` of as_root.sh;
# however it ends (done, timed out, the connection closed under it) the trap removes the
# temporary directory (root-only copies of the CIB) and stops every process it started.
: "${BLOCKS:?}" "${SECTION_TIMEOUT:?}" "${ANSWERS_DIR:?}"

d=$(mktemp -d) || exit 1
names=""
finished=""
# Helpers below use their own variable names: `sec` keeps n, d and names in the same shell.
sec() { n=$1; shift; names="$names $n"; ( bounded "$@" >"$d/$n.out" 2>"$d/$n.err"; echo $? >"$d/$n.rc" ) & }
cleanup() {
  trap '' HUP INT TERM PIPE; trap - EXIT
  rm -rf "$d"
  [ -n "$finished" ] || kill -TERM 0 2>/dev/null
}
trap cleanup EXIT
trap 'exit 143' HUP INT TERM PIPE
command -v timeout >/dev/null 2>&1 || timeout() { shift 4; "$@"; }
bounded() {  # runs in the section's subshell: the limits stay there
  ulimit -c 0; ulimit -f "$BLOCKS"
  case $1 in
    answer_files|conf_file|fence_targets|node_name|sbd_facts|shadow_cibs) "$@" ;;  # shell functions: they bound their own commands
    *) timeout --foreground -k 2 "$SECTION_TIMEOUT" "$@" ;;
  esac
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
  wait
  finished=1
  for _sec in $names; do
    rc=""; [ -f "$d/$_sec.rc" ] && read -r rc <"$d/$_sec.rc"
    rc=${rc:-125}
    printf '==LAB== %s %s\n' "$_sec" "$rc"; base64 -w 0 <"$d/$_sec.out"; echo
    if [ "$rc" != 0 ] && [ -s "$d/$_sec.err" ]; then
      printf '==ERR== %s\n' "$_sec"; tail -c 2000 "$d/$_sec.err" | base64 -w 0; echo
    fi
  done
}
