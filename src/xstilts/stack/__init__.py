"""The local tracking stack (PostgreSQL + mlflow server) for multi-worker runs."""
