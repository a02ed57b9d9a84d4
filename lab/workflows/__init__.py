"""What users do with labs and the engine: check a live lab, grade a class of labs, run a mock
exam and score it. May import every layer below it (core, transport, gather, engine, vm)."""
