"""Everything that touches Postgres: the connection and its statement pool (database.py), the
tables (models.py), the process workflow's writes and reads (mirror.py), workflow definitions
and versions (saved_definitions.py, versions.py), what reports read (reporting.py,
reporting_sql.py, explain.py, drawing.py, integrity.py), reconcile's reads and repairs
(reconcile.py), the attempt log's months and retention (partitions.py, retention.py) and the
schema's migrations. Nothing here imports `workflowable.ops`, and nothing
in `workflowable.workflows` imports this package: workflow code reaches Postgres only through
activities."""
