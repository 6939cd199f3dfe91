"""xstilts: X-STILTs intermediate-task transfer as an MLflow-tracked experiment grid."""

__version__ = "0.1.0"
