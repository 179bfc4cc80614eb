"""edge-jepa: V-JEPA 2 video world models on phones, Jetsons and laptops."""

from edge_jepa.checkpoints import CheckpointError, load
from edge_jepa.models.config import CONFIGS, ModelConfig, get_config
from edge_jepa.models.vjepa2 import VJEPA2
from edge_jepa.preprocess import preprocess
from edge_jepa.surprise import SurpriseResult, SurpriseScorer, surprise_scores

__version__ = "0.1.0"


def create(config: ModelConfig | str, *, seed: int | None = 0) -> VJEPA2:
    """A freshly initialised model of a registered size (or a ModelConfig), seeded for reproducibility."""
    import torch

    if seed is None:
        return VJEPA2(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return VJEPA2(config)


__all__ = ["CONFIGS", "CheckpointError", "ModelConfig", "SurpriseResult", "SurpriseScorer", "VJEPA2", "create",
           "get_config", "load", "preprocess", "surprise_scores", "__version__"]
