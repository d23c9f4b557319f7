"""Training the Infini-attention parameters (gates and LoRA) with back-propagation through memory."""

from .trainer import TrainConfig, sequence_loss, setup, train

__all__ = ["TrainConfig", "sequence_loss", "setup", "train"]
