"""paramiko, imported without invoke.

paramiko imports invoke (when it is installed: paramiko's own dependency) for one feature, the
`Match exec` of an ssh_config file, which the lab never reads. invoke is about half of paramiko's
import time, and that import is on the path of every `lab check` (lab.workflows.connections).
While paramiko loads, a None in sys.modules makes its `import invoke` fail as if invoke were
absent; the entry is removed right after, so any later importer of invoke gets the real one.
"""

from __future__ import annotations

import sys

_hidden = "invoke" not in sys.modules
if _hidden:
    sys.modules["invoke"] = None  # type: ignore[assignment]
try:
    import paramiko
finally:
    if _hidden and "invoke" in sys.modules and sys.modules["invoke"] is None:
        del sys.modules["invoke"]

__all__ = ["paramiko"]
