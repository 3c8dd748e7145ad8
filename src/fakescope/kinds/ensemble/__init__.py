"""The ensemble kind: several single-model bundles whose calibrated scores are combined by a
rule fitted on validation data. It owns its bundle layout (`bundle`), its detector
(`detector`), its fitting (`build`, the library side of `fakescope ensemble`), its card
(`card`) and its entry in the registry (`kind`). It runs on PyTorch only; its members export
to ONNX one by one."""

# Nothing is imported here: `fakescope --help` imports this kind's `cli`, which must not
# pull in torch through the package; import from the submodules.
