"""The face-aware kind: a whole-image detector with a face specialist's second look at the
images a face fills. It owns its bundle layout and route (`bundle`, the library side of
`fakescope face-aware`), its detector and face routing (`detector`), its card (`card`) and its
entry in the registry (`kind`). Both members run on PyTorch or both on onnxruntime; they
export to ONNX one by one."""

from fakescope.kinds.face_aware.bundle import (
    FACE_AWARE_ROLES,
    KIND,
    FaceRoute,
    face_aware_member,
    face_aware_member_path,
    save_face_aware_bundle,
)
from fakescope.kinds.face_aware.card import render_face_aware_card
from fakescope.kinds.face_aware.detector import (
    FaceAwareDetector,
    FaceRoutedPreprocessing,
    OnnxFaceAwareDetector,
)
from fakescope.kinds.face_aware.kind import FaceAwareKind

__all__ = [
    "FACE_AWARE_ROLES",
    "KIND",
    "FaceAwareDetector",
    "FaceAwareKind",
    "FaceRoute",
    "FaceRoutedPreprocessing",
    "OnnxFaceAwareDetector",
    "face_aware_member",
    "face_aware_member_path",
    "render_face_aware_card",
    "save_face_aware_bundle",
]
