"""The seed-style script `predict_vs_seed.py` times fakescope against: PIL open, resize to
224, EfficientNet-Lite0 from timm (the shipped general detector's weights), batch 32, eager
fp32, nothing else (no provenance, no crops, no faces, no domain score).

    python bench/seed_script.py FOLDER            # prints one "path p_fake" line per image
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from safetensors.torch import load_file

WEIGHTS = (
    Path(__file__).resolve().parents[1]
    / "src"
    / "fakescope"
    / "assets"
    / "general_detector"
    / "model.safetensors"
)
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def load(path: Path) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC)
    return np.asarray(img, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0


def main() -> None:
    files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.suffix.lower() in SUFFIXES)
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1)
    model.load_state_dict(load_file(str(WEIGHTS)))
    model.eval()
    with torch.no_grad():
        for start in range(0, len(files), 32):
            chunk = files[start : start + 32]
            batch = torch.from_numpy(np.stack([load(p) for p in chunk]))
            p = torch.sigmoid(model(batch).view(-1)).numpy()
            for path, value in zip(chunk, p, strict=True):
                print(f"{path} {value:.4f}")


if __name__ == "__main__":
    main()
