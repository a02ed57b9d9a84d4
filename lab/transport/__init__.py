"""How a command runs somewhere: on this host (children owned and killed with the lab) or on a
node over SSH, each returning a CommandResult and recorded in the lab's command log.
May import lab.core only."""
