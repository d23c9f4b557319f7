"""Training the Infini-attention parameters (gates and LoRA) with back-propagation through memory."""

from .trainer import TrainConfig, check_out_dir, sequence_loss, setup, train

__all__ = ["TrainConfig", "check_out_dir", "sequence_loss", "setup", "train"]
