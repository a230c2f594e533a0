"""Everything that touches Postgres: the connection and its statement pool (database.py), the
tables (models.py), the process workflow's writes and reads (mirror.py), workflow definitions
and versions (catalog.py, versions.py), what reports read (reporting.py, reporting_sql.py,
integrity.py) and the schema's migrations. Nothing here imports `workflowable.ops`, and nothing
in `workflowable.workflows` imports this package: workflow code reaches Postgres only through
activities."""
