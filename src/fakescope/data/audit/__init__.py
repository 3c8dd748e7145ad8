"""Audit a data source before training: counts, per-class statistics, shortcut biases,
exact and near duplicates, split leaks and unreadable files.

One module per job: `scan` reads each image once (sha256, decode facts, perceptual hash;
a process pool for large sources), `phash` hashes and pairs close hashes sub-quadratically
(multi-index hashing of the 64-bit phashes), `duplicates` groups duplicates and finds split
leaks, `class_stats` and `bias` compare the classes, `assemble` runs them into one
`AuditReport` (`report`), and `render` prints it. 100k images take well under a minute of
CPU per core.
"""

from __future__ import annotations

from fakescope.data.audit.assemble import audit_source
from fakescope.data.audit.duplicates import (
    DuplicateAnalysis,
    analyse_duplicates,
    find_duplicate_groups,
)
from fakescope.data.audit.phash import near_pairs, phash64
from fakescope.data.audit.render import format_audit, print_audit
from fakescope.data.audit.report import AuditReport

__all__ = [
    "AuditReport",
    "DuplicateAnalysis",
    "analyse_duplicates",
    "audit_source",
    "find_duplicate_groups",
    "format_audit",
    "near_pairs",
    "phash64",
    "print_audit",
]
