"""The grading engine: the exercise catalogue as validated data (schema.py: the pydantic models
and the JSON Schema; exercises.py: loading, parameters; faultkinds.py: the fault kinds a start
state may name; pcs.py: which pcs syntax a version takes; commands.py: placeholders in commands),
the pure checks run over gathered facts (grading.py), saved-CIB trials of solutions (offline.py)
and results as reports. Knows nothing about VMs. May import lab.core, lab.transport, lab.gather
(and the top-level checks package)."""
