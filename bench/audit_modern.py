"""The audit of the modern and real manifests on a seeded sample: per source and per
generator format, size, JPEG quality and content type, and which property alone could
decide a verdict.

    python bench/audit_modern.py --modern modern.csv --real real.csv [--per-group 150]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modern", type=Path, required=True)
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--per-group", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("audit_sample.csv"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    from fakescope.data.audit import audit_source, format_audit
    from fakescope.data.sources import CsvSource
    from fakescope.data.split_assignment import write_manifest

    rng = np.random.default_rng(args.seed)
    groups: dict[str, list] = defaultdict(list)
    for item in CsvSource(args.modern).items + CsvSource(args.real).items:
        groups[(item.generator or "") if item.label == 1 else f"real {item.source}"].append(item)
    sample = []
    for name in sorted(groups):
        members = groups[name]
        sample += [members[i] for i in sorted(rng.permutation(len(members))[: args.per_group])]
    write_manifest(sample, args.out)
    report = audit_source(CsvSource(args.out), progress=False)
    print(f"# {machine(torch_threads=False)}; {len(sample)} images, <= {args.per_group} per group")
    print(format_audit(report, width=200))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
