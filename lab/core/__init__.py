"""The pure model: errors, safe XML/TOML reading, durations and scores, and the typed views of a
CIB, of crm_mon's status and of corosync.conf. No I/O beyond reading a file; imports nothing
from the rest of lab (tests/test_layers.py holds every subpackage to its layer)."""
