"""Runners: the surprise step on eager PyTorch, ExecuTorch, ONNX Runtime or CoreML behind one call."""

from edge_jepa.runtime.base import EagerRunner, Runner, StepOutput

__all__ = ["EagerRunner", "Runner", "StepOutput"]
