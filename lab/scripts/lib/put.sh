# put B64 DEST MODE OWNER: write DEST atomically from one base64 line (files and secrets reach a
# node on stdin, never on a command line), with its mode and owner set before it appears.
put() {
  printf '%s' "$1" | base64 -d >"$2.lab"; chown "$4" "$2.lab"; chmod "$3" "$2.lab"; mv -f "$2.lab" "$2"
}
