# This node's SSH host public keys, one per line.
cat /etc/ssh/ssh_host_*_key.pub
