# The start-timeout drop-in for every lab unit (lib/unit_timeouts.sh).
install_unit_timeouts
