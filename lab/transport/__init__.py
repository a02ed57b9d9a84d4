"""How a command runs somewhere: on this host (children owned and killed with the lab), on a
node over SSH, or on this host against a saved CIB, each a lab.transport.base.Runner returning
a CommandResult and recorded in the lab's command log (log); one retry policy (retry); node
scripts from lab/scripts (scripts). May import lab.core only."""
