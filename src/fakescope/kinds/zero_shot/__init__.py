"""The zero-shot detector kind: a model of real photographs only (a small multi-resolution
lossless coder), and p(fake) from how an image's actual coding cost under it compares with
the cost it expected (ZED, Cozzolino et al., ECCV 2024).

One package owns the kind: the coder (`coder`), the statistic (`statistic`), the real data
and its hold-out (`data`), the recipe and trainer (`recipe`, `train`), the threshold fit
(`fit`), the bundle and its card (`bundle`, `card`), the detector (`detector`), its ONNX
graph (`onnx_graph`) and its entry in the registry (`kind`). `fakescope zero-shot ...` are its
commands (`cli`). This file imports nothing: `fakescope --help` imports `cli`, which must not
pull in torch.
"""
