"""The `lab` command: argument parsing and the words users read. The only layer that knows
about flags and terminals; imports any layer below it."""
