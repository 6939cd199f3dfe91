"""Task heads on one shared encoder, and compact save/load of trained models."""
