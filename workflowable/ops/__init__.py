"""Tooling around the runtime: the `workflowable` command (cli.py), the dev stack (devstack.py),
the benchmark (bench.py), deployment checks (checks.py), the HTML report (report_html.py) and a
clean exit for scripts (exiting.py). The runtime never needs it, except the dev stack's
embedded Postgres when no database URL is set."""
