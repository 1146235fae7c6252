"""Tensor operations that know no network: boxes (:mod:`~featherface._ops.boxes`), priors
(:mod:`~featherface._ops.priors`), the box coder (:mod:`~featherface._ops.box_coder`) and the modulated
deformable convolution with its ONNX symbolic (:mod:`~featherface._ops.deform_conv`). Import the
submodule you need."""
