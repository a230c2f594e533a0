"""Worker entry point for deployments: `python -m workers.main --app myapp.types:TYPES`.

The same as `workflowable worker`; settings come from WORKFLOWABLE_* variables.
"""

from __future__ import annotations

import sys

from workflowable.ops.cli import main

if __name__ == "__main__":
    main(["worker", *sys.argv[1:]])
