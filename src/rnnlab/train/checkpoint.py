"""Moved to ``rnnlab.checkpoint`` (models save and load through it without importing ``train``)."""
from ..checkpoint import Checkpoint, CheckpointError, load_checkpoint, model_from_config, read_checkpoint, save_checkpoint  # noqa: F401
