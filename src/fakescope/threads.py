"""How many threads scoring uses, so that decoding, the face search and the model share the
cores instead of fighting over them.

The model runs on its own pool: onnxruntime with one intra-op thread per core, or PyTorch
with its own setting. Images are decoded and prepared (for a face-aware detector that
includes the face search, on onnxruntime with one thread per net: `fakescope.mtcnn_onnx`) by
one worker thread per core, while the model scores the previous batch. Where PyTorch is
loaded beside a model on onnxruntime (the face search's PyTorch fallback, a GPU user's
setup), each of those workers runs it on one intra-op thread (`decode_threads`): several
PyTorch pools of two threads on two cores, next to onnxruntime's, made `predict` spend a
third of its time in the kernel.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


def cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def torch_loaded() -> bool:
    """Whether something in this process has imported PyTorch (a detector or face search on
    it). Code that only tunes PyTorch asks this first, so that it never loads PyTorch itself:
    the onnxruntime path runs without it."""
    return "torch" in sys.modules


def worker_count() -> int:
    """Threads that read, decode and prepare images beside the model: one per core."""
    return max(1, cores())


@contextlib.contextmanager
def decode_threads(runtime: str) -> Iterator[None]:
    """While a detector on `runtime` scores: with 'onnx', PyTorch (left with the face search
    in the worker threads) on one intra-op thread; with 'torch', unchanged (the model needs
    its threads). Restored afterwards. Nothing to do where PyTorch is not loaded (scoring on
    onnxruntime with a face search that does not use it): it is not imported for this."""
    if runtime != "onnx" or not torch_loaded():
        yield
        return
    import torch

    if torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
