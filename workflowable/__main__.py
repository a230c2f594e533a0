"""`python -m workflowable ...`: the `workflowable` command."""

from workflowable.ops.cli import main

main()
