"""The face-aware kind: a whole-image detector with a face specialist's second look at the
images a face fills. It owns its bundle layout and route (`bundle`, the library side of
`fakescope face-aware`), its detector and face routing (`detector`), its card (`card`) and its
entry in the registry (`kind`). Both members run on PyTorch or both on onnxruntime; they
export to ONNX one by one."""

# Nothing is imported here: `fakescope --help` imports this kind's `cli`, which must not
# pull in torch through the package; import from the submodules.
