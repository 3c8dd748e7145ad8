"""Data-parallel training across processes and machines (torchrun + DistributedDataParallel).

`torchrun` starts one process per device and sets RANK, WORLD_SIZE and LOCAL_RANK; `session()`
joins them into a process group (gloo for CPU tensors, NCCL for CUDA tensors). Every process
runs the same loop over the same global batches, keeps its slice of each one (`shard`) and DDP
averages the gradients, so N processes follow the trajectory of one process with the whole
batch. Batch-norm statistics are synchronised across processes (`GlobalBatchNorm` on CPU,
`SyncBatchNorm` on CUDA) so the normalisation sees the global batch too. Process 0 alone
writes files and prints; everything the processes must agree on (stop flags, validation
results) is decided once and shared.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from fakescope.errors import DistributedError

T = TypeVar("T")
P = ParamSpec("P")
_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def env_world_size() -> int:
    """Number of processes torchrun started (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in process 0 of a distributed run, and in an ordinary single-process run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


@dataclass(frozen=True)
class DistContext:
    """This process's place in the run; with world_size 1 every method is a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    # -- batches and gradients ----------------------------------------------------------
    def shard(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """This process's contiguous slice of a global batch, and its loss weight.

        The weight (local size x world size / global size) makes DDP's gradient average equal
        the gradient of the mean loss over the global batch even when it does not split evenly.
        """
        if not self.enabled:
            return images, labels, 1.0
        n = labels.shape[0]
        low, high = n * self.rank // self.world_size, n * (self.rank + 1) // self.world_size
        weight = (high - low) * self.world_size / n if n else 0.0
        return images[low:high], labels[low:high], weight

    def wrap(self, model: nn.Module, device: torch.device, *, find_unused: bool) -> nn.Module:
        """DDP around `model` (whose batch norms become synchronised in place)."""
        if not self.enabled:
            return model
        synchronize_batchnorm(model, device)
        on_gpu = device.type == "cuda" and device.index is not None
        return nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if on_gpu else None,
            # parameters frozen for a phase (freeze_epochs) get no gradient
            find_unused_parameters=find_unused,
        )

    # -- agreeing on values -------------------------------------------------------------
    def _reduce(self, values: list[float], op: dist.ReduceOp.RedOpType) -> list[float]:
        tensor = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(tensor, op=op)
        return tensor.tolist()

    def average(self, value: float) -> float:
        """Mean of `value` over the processes (the global-batch loss from the local ones)."""
        if not self.enabled:
            return value
        return self._reduce([value], dist.ReduceOp.SUM)[0] / self.world_size

    def maximum(self, value: float) -> float:
        """Largest `value` over the processes (e.g. the elapsed time, for the schedule)."""
        if not self.enabled:
            return value
        return self._reduce([value], dist.ReduceOp.MAX)[0]

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag is true everywhere if it is true in any process (stop requests)."""
        if not self.enabled:
            return tuple(flags)
        return tuple(v > 0 for v in self._reduce([float(f) for f in flags], dist.ReduceOp.MAX))

    def _in_main(self, fn: Callable[[], T], share_result: bool) -> T | None:
        """Run `fn` in process 0; every process gets its result (or its failure)."""
        payload: list[Any] = [None]
        if self.is_main:
            try:
                value = fn()
            except BaseException as exc:
                dist.broadcast_object_list([(False, f"{type(exc).__name__}: {exc}")], src=0)
                raise
            payload = [(True, value if share_result else None)]
        dist.broadcast_object_list(payload, src=0)
        ok, value = payload[0]
        if not ok:
            raise DistributedError(f"process 0 stopped the run: {value}")
        return value

    def from_main(self, fn: Callable[[], T]) -> T:
        """Run `fn` in process 0 only and give every process its result."""
        if not self.enabled:
            return fn()
        return self._in_main(fn, share_result=True)  # type: ignore[return-value]

    def main_first(self, fn: Callable[[], T]) -> T:
        """Run `fn` in process 0, then in the others (when process 0 creates shared files)."""
        if not self.enabled:
            return fn()
        if self.is_main:
            result: list[T] = []
            self._in_main(lambda: result.append(fn()), share_result=False)
            return result[0]
        self._in_main(lambda: None, share_result=False)
        return fn()

    def gather_rng_states(self) -> dict[str, torch.Tensor]:
        """Every other process's torch RNG state (dropout), for an exact mid-epoch resume."""
        if not self.enabled:
            return {}
        states: list[Any] = [None] * self.world_size
        dist.all_gather_object(states, torch.get_rng_state())
        return {f"rng_torch_rank{r}": state for r, state in enumerate(states) if r}


def current() -> DistContext:
    """The context of the process group this process belongs to (single-process if none)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    return DistContext(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


@contextmanager
def session() -> Iterator[DistContext]:
    """Join the torchrun process group for the duration of a run (no-op for one process).

    On success all processes meet at a barrier before the group is destroyed, so none exits
    while process 0 is still writing the bundle.
    """
    if env_world_size() <= 1 or dist.is_initialized():
        yield current()
        return
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise DistributedError(
            f"WORLD_SIZE={env_world_size()} is set but {', '.join(missing)} is not; "
            f"launch distributed runs with torchrun (see README, 'Distributed training')"
        )
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(
        backend="cpu:gloo,cuda:nccl" if cuda else "gloo",
        # process 0 alone decodes a disk cache or writes the bundle while the others wait
        timeout=timedelta(minutes=float(os.environ.get("FAKESCOPE_DIST_TIMEOUT_MIN", "120"))),
    )
    finished = False
    try:
        yield current()
        finished = True
    finally:
        if finished:
            dist.barrier()
        dist.destroy_process_group()


def in_session(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorator: run `fn` inside `session()`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with session():
            return fn(*args, **kwargs)

    return wrapper


class NullWriter:
    """Stands in for the TensorBoard SummaryWriter in processes other than 0."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass


# -- batch norm over the global batch ---------------------------------------------------
class _AllReduceSum(torch.autograd.Function):
    """Sum over processes; the gradient of a sum is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        total = tensor.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        total = grad.clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total


def _all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(tensor)


class _GlobalBatchNormMixin:
    """Batch norm whose training statistics are those of the batch summed over all processes.

    torch.nn.SyncBatchNorm does this on GPUs only; this version works on any device through
    two differentiable all-reduces (sum, then squared deviations: as exact as one process's).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        if not (bn.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)  # type: ignore[misc]
        return self.normalize_over(x, _all_reduce_sum)

    def normalize_over(
        self, x: torch.Tensor, total: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """Training-mode batch norm with statistics summed by `total` (over processes)."""
        bn: nn.modules.batchnorm._BatchNorm = self  # type: ignore[assignment]
        bn._check_input_dim(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        xf = x.float()
        count = torch.tensor([xf.numel() / max(1, xf.shape[1])], device=x.device)
        totals = total(torch.cat([xf.sum(dims), count]))
        n = totals[-1]
        mean = totals[:-1] / n
        centred = xf - mean.view(shape)
        var = total((centred * centred).sum(dims)) / n
        if bn.track_running_stats and bn.running_mean is not None:
            assert bn.running_var is not None and bn.num_batches_tracked is not None
            bn.num_batches_tracked.add_(1)
            factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
            with torch.no_grad():
                unbiased = var * n / (n - 1).clamp(min=1)
                bn.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
                bn.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        out = centred * torch.rsqrt(var + bn.eps).view(shape)
        if bn.affine:
            out = out * bn.weight.view(shape) + bn.bias.view(shape)
        return out.to(x.dtype)


class GlobalBatchNorm1d(_GlobalBatchNormMixin, nn.BatchNorm1d):
    pass


class GlobalBatchNorm2d(_GlobalBatchNormMixin, nn.BatchNorm2d):
    pass


class GlobalBatchNorm3d(_GlobalBatchNormMixin, nn.BatchNorm3d):
    pass


_GLOBAL_VERSIONS: dict[type, type] = {
    nn.BatchNorm1d: GlobalBatchNorm1d,
    nn.BatchNorm2d: GlobalBatchNorm2d,
    nn.BatchNorm3d: GlobalBatchNorm3d,
}


def _to_global(bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    new = _GLOBAL_VERSIONS[type(bn)](
        bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats
    )
    if bn.affine:
        new.weight, new.bias = bn.weight, bn.bias  # the same Parameters: optimizers stay valid
    new.running_mean, new.running_var = bn.running_mean, bn.running_var
    new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


def synchronize_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Replace `model`'s batch norms in place by versions that see the global batch.

    CUDA: timm's converter (torch SyncBatchNorm, and timm's norm+activation layers). Other
    devices: `GlobalBatchNorm*` for torch's BatchNorm1d/2d/3d; other batch-norm subclasses
    keep per-process statistics (a warning names them), which is close but not identical.
    """
    if isinstance(model, nn.modules.batchnorm._BatchNorm):
        raise TypeError("synchronize_batchnorm expects a model, not a bare batch norm")
    if device.type == "cuda":
        # timm is heavy and only the CUDA path needs it; this module otherwise needs torch only
        from timm.layers import convert_sync_batchnorm

        return convert_sync_batchnorm(model)
    left: set[str] = set()
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if (
                isinstance(child, nn.modules.batchnorm._BatchNorm)
                and type(child) in _GLOBAL_VERSIONS
            ):
                setattr(parent, name, _to_global(child))
            elif isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(
                child, _GlobalBatchNormMixin
            ):
                left.add(type(child).__name__)
    if left:
        warnings.warn(
            f"{', '.join(sorted(left))} layers keep per-process batch statistics on "
            f"{device.type}: results will be close to, not identical with, one process",
            stacklevel=2,
        )
    return model
