"""Benchmark (c): what the decoded-tensor cache buys, before (decode every epoch) and after.

Times one pass over N CIFAKE training images as the trainer reads them, with and without the
cache, and a full training epoch of the quick recipe's model both ways.
    python bench/cache_speed.py [--n 20000]
"""

from __future__ import annotations

import argparse
import time

import torch
from _common import cifake, machine, peak_rss_mb
from torch.utils.data import DataLoader

from fakescope.data.cache import StreamingDataset, decode_items
from fakescope.data.sources import open_source
from fakescope.data.transforms import Preprocessing
from fakescope.models import create_model
from fakescope.training.device import autocast_context, resolve_precision


def epoch_time(batches, model, pre, precision) -> float:
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    started = time.perf_counter()
    for images, labels in batches:
        x = pre.normalize(images).contiguous(memory_format=torch.channels_last)
        with autocast_context(torch.device("cpu"), precision):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits.float().view(-1), labels.float()
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    source = open_source(cifake())
    items = source.items[:: len(source.items) // args.n][: args.n]
    pre = Preprocessing(input_size=32)
    bs = 128
    print(f"machine: {machine()}")

    stream = StreamingDataset(items, source.read_bytes, pre)
    loader = DataLoader(stream, batch_size=bs, shuffle=True, num_workers=args.workers)
    started = time.perf_counter()
    for _ in loader:
        pass
    before = time.perf_counter() - started
    print(f"before: decode every epoch, {args.workers} workers: {args.n / before:8.0f} images/s")

    started = time.perf_counter()
    decoded = decode_items(items, source.read_bytes, pre, progress=False)
    build = time.perf_counter() - started
    started = time.perf_counter()
    order = torch.randperm(len(decoded))
    for start in range(0, len(decoded), bs):
        index = order[start : start + bs]
        decoded.images[index], decoded.labels[index]
    after = time.perf_counter() - started
    print(f"after:  cached uint8 tensor:        {args.n / after:8.0f} images/s "
          f"(built once in {build:.1f} s, {decoded.images.nbytes / 1e6:.0f} MB)")  # fmt: skip

    precision = resolve_precision("auto", torch.device("cpu"))
    model = create_model("resnet_se", widths=[32, 64, 128], stem="unshuffle")
    model = model.to(memory_format=torch.channels_last).train()
    small = args.n // 4
    sub_loader = DataLoader(
        torch.utils.data.Subset(stream, range(small)), batch_size=bs, num_workers=args.workers
    )
    t_stream = epoch_time(sub_loader, model, pre, precision)
    cached = [(decoded.images[i : i + bs], decoded.labels[i : i + bs]) for i in range(0, small, bs)]
    t_cache = epoch_time(cached, model, pre, precision)
    print(f"training ({precision}), {small} images: streaming {small / t_stream:.0f} images/s, "
          f"cached {small / t_cache:.0f} images/s")  # fmt: skip
    print(f"peak RSS {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
