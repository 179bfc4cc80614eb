"""The V-JEPA 2 architecture: config, encoder, predictor, RoPE and blocks."""

from edge_jepa.models.config import (
           CONFIGS,
           ClipConfig,
           EncoderConfig,
           ModelConfig,
           PredictorConfig,
           get_config,
)
from edge_jepa.models.encoder import Encoder
from edge_jepa.models.layers import set_op_set
from edge_jepa.models.predictor import Predictor
from edge_jepa.models.vjepa2 import VJEPA2, FlopCount

__all__ = ["CONFIGS", "ClipConfig", "Encoder", "EncoderConfig", "FlopCount", "ModelConfig", "Predictor",
           "PredictorConfig", "VJEPA2", "get_config", "set_op_set"]
