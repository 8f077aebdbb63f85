"""parameter_shapes describes the module without building it; it must agree with the module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tiny_copilot.model.config import ModelConfig, preset_config
from tiny_copilot.model.transformer import GPT, count_parameters, parameter_shapes


@pytest.mark.parametrize(
    "config",
    [
        ModelConfig(vocab_size=64, d_model=8, n_layers=1, n_heads=2, max_seq_len=16),
        ModelConfig(vocab_size=100, d_model=12, n_layers=3, n_heads=3, max_seq_len=32, mlp_ratio=3),
        preset_config("tiny", max_seq_len=64),
    ],
)
def test_shapes_match_the_module(config: ModelConfig):
    model = GPT(config)
    assert parameter_shapes(config) == {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert count_parameters(config) == model.num_parameters()


def test_load_imports_no_dynamo(untrained_checkpoint):
    # The first arithmetic on the meta device imports torch._dynamo, sympy and about 800 other modules
    # (0.7-1.1 s, 76 MB of memory). The language server loads checkpoints, so it must not pay that.
    script = (
        "import sys\n"
        "from tiny_copilot.model.checkpoint import load_checkpoint\n"
        f"load_checkpoint({str(untrained_checkpoint)!r})\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"
