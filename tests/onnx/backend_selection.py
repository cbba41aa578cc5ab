"""Which tests of ``onnx.backend.test.BackendTest`` run jitgrad's ONNX backend, and which are excluded, why.

Shared by tests/onnx/test_backend.py (jitgrad) and bench/onnx_backend_counts.py
(the same selection on jitgrad and on onnxruntime, for the pass counts).
"""

from __future__ import annotations

#: Issue 15's operator list, as node-test name prefixes (``test_<op>_...``) of the onnx package.
NODE_OPS = [
    "conv", "convtranspose", "batchnorm", "lrn", "maxpool", "averagepool", "globalaveragepool", "globalmaxpool",
    "gemm", "matmul", "add", "sub", "mul", "div", "sum", "relu", "leakyrelu", "prelu", "sigmoid", "tanh", "elu",
    "softplus", "gelu", "clip", "softmax", "logsoftmax", "flatten", "reshape", "transpose", "concat", "split",
    "squeeze", "unsqueeze", "pad", "constant_pad", "edge_pad", "reflect_pad", "wrap_pad", "identity", "dropout",
    "constant", "constantofshape", "shape", "gather", "layer_normalization",
]

#: PyTorch-converted and PyTorch-operator tests of those operators (names as the onnx package spells them).
TORCH_TESTS = [
    "Conv2d", "ConvTranspose2d", "BatchNorm2d", "BatchNorm1d", "MaxPool2d", "AvgPool2d", "Linear", "ReLU",
    "LeakyReLU", "PReLU", "Sigmoid", "Tanh", "ELU", "Softplus", "Softmax", "LogSoftmax", "ZeroPad2d",
    "ReflectionPad2d", "ReplicationPad2d", "ConstantPad2d", "PixelShuffle", "Embedding",
    "operator_add", "operator_basic", "operator_concat", "operator_conv", "operator_flatten", "operator_mm",
    "operator_pad", "operator_params", "operator_permute", "operator_reduced", "operator_view", "operator_maxpool",
    "operator_chunk", "operator_clip", "operator_index", "operator_non_float_params", "operator_transpose",
]

#: The nine model-zoo graphs. The onnx wheel ships them offline as "light" models (weights made by
#: ConstantOfShape nodes) with their expected outputs, so no download is needed.
MODEL_ZOO = ["bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
             "squeezenet", "vgg19", "zfnet512"]


def include_patterns() -> list[str]:
    node = "|".join(sorted(NODE_OPS, key=len, reverse=True))
    torch = "|".join(sorted(TORCH_TESTS, key=len, reverse=True))
    zoo = "|".join(MODEL_ZOO)
    return [rf"^test_({node})(_.*)?_cpu$", rf"^test_({torch})(_.*)?_cpu$", rf"^test_({zoo})_cpu$"]


#: Excluded tests: regex -> reason. Every one is listed in docs/onnx.md's backend section.
EXCLUDED: dict[str, str] = {}


def exclude(reason: str, *patterns: str) -> None:
    for p in patterns:
        EXCLUDED[p] = reason


#: The runner's function-expanded twins of the selected tests (deselected by tests/onnx/conftest.py).
EXPANDED = r"_expanded(_ver18)?_cpu$"
exclude("the function-body expansion uses operators outside issue 15's list (Size, CastLike, Less, Where, ...)",
        EXPANDED)
exclude("3-D ConvTranspose: jitgrad's transposed convolution is 2-D (1-D runs as 2-D over (L, 1))",
        r"^test_convtranspose_3d_cpu$")
exclude("integer (int8/uint8) inputs: the issue asks for float32; jitgrad's kernels are float-only",
        r"^test_maxpool_2d_uint8", r"^test_clip_default_int8")
exclude("MaxPool's Indices output (argmax in ONNX's flat layout) is not exported by jitgrad's kernel",
        r"^test_maxpool_with_argmax")
exclude("sequence and optional types: outside the tensor-only importer", r"^test_split_to_sequence",
        r"^test_identity_(opt|sequence)")
exclude("GatherElements is a different operator than Gather (matched by the name prefix)", r"^test_gather_elements")
