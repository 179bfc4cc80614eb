"""Bad checkpoints give one clear error naming the file / keys, never a raw pickle traceback."""

from __future__ import annotations

import pickle

import pytest
import torch

import edge_jepa
from edge_jepa import CheckpointError
from tests.layouts import official_state, tiny_hf_model, write_official


@pytest.fixture(scope="module")
def hf():
    return tiny_hf_model(hidden_size=128, num_attention_heads=2, pred_hidden_size=64, pred_num_attention_heads=2)


def test_missing_and_misshaped_keys_named_with_detected_size(tmp_path, hf):
    state = official_state(hf)
    del state["encoder"]["module.backbone.blocks.1.mlp.fc2.bias"]
    state["predictor"]["module.backbone.predictor_proj.weight"] = torch.zeros(5, 5)
    state["predictor"]["module.backbone.extra.weight"] = torch.zeros(2)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as e:
        edge_jepa.load(tmp_path / "bad.pt")
    msg = str(e.value)
    assert "bad.pt" in msg and "custom-128x2" in msg
    assert "missing keys: encoder.blocks.1.mlp.fc2.bias" in msg
    assert "predictor.proj.weight: expected (128, 64), got (5, 5)" in msg
    assert "unexpected keys: predictor.extra.weight" in msg


def test_truncated_checkpoint(tmp_path, hf):
    path = write_official(hf, tmp_path / "full.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pt: not a readable PyTorch checkpoint"):
        edge_jepa.load(tmp_path / "cut.pt")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pt").write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match=r"notes\.pt"):
        edge_jepa.load(tmp_path / "notes.pt")


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_with_code_is_refused_not_executed(tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"encoder": Evil()}, f)
    with pytest.raises(CheckpointError, match=r"evil\.pt: refused to unpickle"):
        edge_jepa.load(tmp_path / "evil.pt")
    assert "must never run" not in capsys.readouterr().out


def test_truncated_safetensors_in_hf_dir(tmp_path, hf):
    hf.save_pretrained(tmp_path / "hf")
    weights = tmp_path / "hf" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: cannot read safetensors"):
        edge_jepa.load(tmp_path / "hf")


def test_missing_path_and_unknown_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        edge_jepa.load(tmp_path / "nope.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="neither"):
        edge_jepa.load(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match=r"edge_jepa\.create\('vit_small'\)"):
        edge_jepa.load("vit_small")
