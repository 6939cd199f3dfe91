"""The training loop, its batch schedule, checkpoints (resume) and model selection."""
