"""Training: checkpoints, the shared run-directory helpers, and the trainers (lm, seq2seq)."""
from .checkpoint import save_checkpoint, load_checkpoint, Checkpoint, CheckpointError
