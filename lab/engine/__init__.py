"""The grading engine: the exercise catalogue as data, the pure checks run over gathered facts,
and results as reports. Knows nothing about VMs. May import lab.core, lab.transport, lab.gather
(and the top-level checks package)."""
