# Identity, /etc/hosts, the fixed cluster addresses (the box profile's NETWORK commands), and the
# lab's SSH key for SSH_USER instead of Vagrant's insecure one.
set -eu
: "${NODE:?}" "${HOSTS:?}" "${NETWORK:?}" "${SSH_USER:?}" "${PUBKEY:?}"
[ "$(cat /etc/hostname 2>/dev/null)" = "$NODE" ] || echo "$NODE" >/etc/hostname
[ "$(hostname)" = "$NODE" ] || hostname "$NODE"
printf '%s' "$HOSTS" >/etc/hosts.lab
if cmp -s /etc/hosts.lab /etc/hosts; then rm -f /etc/hosts.lab; else mv /etc/hosts.lab /etc/hosts; fi
# boxes/profiles/*.toml `network`, already filled in with the interface and address.
eval "$NETWORK"
home=/home/$SSH_USER
install -d -m 0700 -o "$SSH_USER" -g "$SSH_USER" "$home/.ssh"
printf '%s\n' "$PUBKEY" >"$home/.ssh/authorized_keys.lab"
chown "$SSH_USER": "$home/.ssh/authorized_keys.lab"; chmod 0600 "$home/.ssh/authorized_keys.lab"
mv "$home/.ssh/authorized_keys.lab" "$home/.ssh/authorized_keys"
