"""Thread settings while scoring: PyTorch beside a model on onnxruntime runs on one intra-op
thread, and is restored afterwards; a model on PyTorch keeps its threads."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from fakescope.detectors.base import stack_arrays, stack_numpy
from fakescope.threads import decode_threads, torch_loaded


@pytest.fixture
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_onnx_scoring_caps_loaded_torch_to_one_thread_and_restores(two_threads) -> None:
    assert torch_loaded()
    with decode_threads("onnx"):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_torch_scoring_keeps_its_threads(two_threads) -> None:
    with decode_threads("torch"):
        assert torch.get_num_threads() == 2


def test_torch_loaded_is_false_in_a_process_that_never_imported_it() -> None:
    code = (
        "import sys; from fakescope.threads import decode_threads, torch_loaded\n"
        "with decode_threads('onnx'): pass\n"
        "assert not torch_loaded(), 'threads imported torch'\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stacking_prepared_arrays_for_either_runtime() -> None:
    arrays = [np.full((3, 4, 4), i, dtype=np.float32) for i in range(3)]
    batch = stack_numpy(arrays)
    assert batch.shape == (3, 3, 4, 4) and batch[2, 0, 0, 0] == 2
    assert stack_numpy(batch) is batch  # already a batch
    tensor = stack_arrays(arrays)
    assert torch.equal(tensor, torch.from_numpy(batch))
    strided = batch[:, :, ::2, ::2]  # not contiguous: torch gets a contiguous copy
    assert stack_arrays(strided).is_contiguous()
    assert stack_arrays(tensor) is tensor
