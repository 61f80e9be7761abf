"""A model zoo built in pure Python: torchvision's ResNet-50, GoogLeNet, AlexNet and MobileNetV2, plus tiny nets.

Every model is written with ``onnx.helper`` and filled with seeded NumPy random weights, so nothing has to
be downloaded and no deep-learning framework is needed. The big four reproduce torchvision's inference
graphs layer for layer (and so its parameter counts); the tiny nets compile and tune in seconds.

All models have one float32 input named ``input`` (NCHW for the CNNs) and one output named ``output``,
use ONNX opset 17 and IR version 8, and keep ``BatchNormalization`` as its own node (not folded into the
convolution before it). Initializers are named like torchvision's state dict (``layer1.0.conv1.weight``).

Example
-------
>>> from tvmc_transfer import zoo
>>> sorted(zoo.MODELS)  # doctest: +NORMALIZE_WHITESPACE
['alexnet', 'googlenet', 'mobilenet_v2', 'resnet50', 'tiny-cnn', 'tiny-cnn-b', 'tiny-mlp', 'tiny-mobile',
 'tiny-resnet']
>>> model = zoo.build("tiny-cnn", seed=0)
>>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]
(['input'], ['output'])
>>> zoo.count_parameters(zoo.build("tiny-mlp"))
2410
"""

from __future__ import annotations

import os
from typing import Callable

import attrs
import numpy as np
import onnx

from ..atomic import atomic_write
from .onnx_graph import BATCH_DIM, IR_VERSION, OPSET, RELU6_BOUNDS, Graph  # noqa: F401  (zoo.OPSET and friends: public names)


@attrs.frozen
class ZooModel:
    """One entry of the zoo: what the model is and how to build it.

    ``build(seed, dynamic_batch)`` returns a fresh ``onnx.ModelProto``; ``input_shape`` is the static shape of
    the single input ``input`` (with ``dynamic_batch=True`` its first dimension becomes the symbol ``N``).

    Example
    -------
    >>> from tvmc_transfer.frontends.zoo import MODELS
    >>> MODELS["tiny-mlp"].input_shape
    (1, 64)
    >>> MODELS["tiny-mlp"].build(seed=1, dynamic_batch=False).graph.input[0].name
    'input'
    """

    name: str
    description: str
    input_shape: tuple[int, ...]
    build: Callable[[int, bool], onnx.ModelProto] = attrs.field(repr=False)


# ---- ResNet-50 ---------------------------------------------------------------------------------------------


# With plain He-normal weights and near-identity BatchNorms every residual branch adds about as much variance
# as its input already has, so 16 blocks would grow the output std a thousandfold. Fixup's rule scales the
# last conv of each branch by L ** (-1 / (2m - 2)) for L branches of m layers: 16 ** (-1 / 4) = 0.5.
_RESNET50_BRANCH_GAIN = 16 ** (-1 / 4)


def _bottleneck(g: Graph, x: str, name: str, cin: int, planes: int, stride: int) -> str:
    """torchvision's Bottleneck (v1.5: the stride sits on the 3x3 conv), expansion 4."""
    cout = planes * 4
    y = g.relu(g.batch_norm(g.conv(x, f"{name}.conv1", cin, planes, 1, bias=False), f"{name}.bn1", planes))
    y = g.conv(y, f"{name}.conv2", planes, planes, 3, stride=stride, pad=1, bias=False)
    y = g.relu(g.batch_norm(y, f"{name}.bn2", planes))
    y = g.conv(y, f"{name}.conv3", planes, cout, 1, bias=False, gain=_RESNET50_BRANCH_GAIN)
    y = g.batch_norm(y, f"{name}.bn3", cout)
    if stride != 1 or cin != cout:
        x = g.conv(x, f"{name}.downsample.0", cin, cout, 1, stride=stride, bias=False)
        x = g.batch_norm(x, f"{name}.downsample.1", cout)
    return g.relu(g.add(y, x, f"{name}.add"))


def _resnet50(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.conv("input", "conv1", 3, 64, 7, stride=2, pad=3, bias=False)
    x = g.relu(g.batch_norm(x, "bn1", 64))
    x = g.max_pool(x, "maxpool", 3, stride=2, pad=1)
    cin = 64
    for layer, (planes, blocks, stride) in enumerate([(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)], start=1):
        for block in range(blocks):
            x = _bottleneck(g, x, f"layer{layer}.{block}", cin, planes, stride if block == 0 else 1)
            cin = planes * 4
    x = g.global_avg_pool_flatten(x, "avgpool")
    g.linear(x, "fc", 2048, 1000, output="output")
    return g.to_model("resnet50", MODELS["resnet50"].description, (1, 3, 224, 224), (1, 1000), dynamic_batch)


# ---- GoogLeNet ---------------------------------------------------------------------------------------------

_GOOGLENET_EPS = 1e-3  # torchvision's BasicConv2d uses BatchNorm2d(eps=0.001)


def _inception(  # pylint: disable=too-many-arguments
    g: Graph,
    x: str,
    name: str,
    cin: int,
    ch1x1: int,
    ch3x3red: int,
    ch3x3: int,
    ch5x5red: int,
    ch5x5: int,
    pool_proj: int,
) -> str:
    """torchvision's Inception block; its "5x5" branch really is a 3x3 conv (a known torchvision quirk)."""
    eps = _GOOGLENET_EPS
    b1 = g.conv_bn_relu(x, f"{name}.branch1", cin, ch1x1, 1, eps=eps)
    b2 = g.conv_bn_relu(x, f"{name}.branch2.0", cin, ch3x3red, 1, eps=eps)
    b2 = g.conv_bn_relu(b2, f"{name}.branch2.1", ch3x3red, ch3x3, 3, pad=1, eps=eps)
    b3 = g.conv_bn_relu(x, f"{name}.branch3.0", cin, ch5x5red, 1, eps=eps)
    b3 = g.conv_bn_relu(b3, f"{name}.branch3.1", ch5x5red, ch5x5, 3, pad=1, eps=eps)
    b4 = g.max_pool(x, f"{name}.branch4.0", 3, stride=1, pad=1, ceil_mode=True)
    b4 = g.conv_bn_relu(b4, f"{name}.branch4.1", cin, pool_proj, 1, eps=eps)
    return g.concat([b1, b2, b3, b4], f"{name}.concat")


def _googlenet(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    eps = _GOOGLENET_EPS
    x = g.conv_bn_relu("input", "conv1", 3, 64, 7, stride=2, pad=3, eps=eps)
    x = g.max_pool(x, "maxpool1", 3, stride=2, ceil_mode=True)
    x = g.conv_bn_relu(x, "conv2", 64, 64, 1, eps=eps)
    x = g.conv_bn_relu(x, "conv3", 64, 192, 3, pad=1, eps=eps)
    x = g.max_pool(x, "maxpool2", 3, stride=2, ceil_mode=True)
    x = _inception(g, x, "inception3a", 192, 64, 96, 128, 16, 32, 32)
    x = _inception(g, x, "inception3b", 256, 128, 128, 192, 32, 96, 64)
    x = g.max_pool(x, "maxpool3", 3, stride=2, ceil_mode=True)
    x = _inception(g, x, "inception4a", 480, 192, 96, 208, 16, 48, 64)
    x = _inception(g, x, "inception4b", 512, 160, 112, 224, 24, 64, 64)
    x = _inception(g, x, "inception4c", 512, 128, 128, 256, 24, 64, 64)
    x = _inception(g, x, "inception4d", 512, 112, 144, 288, 32, 64, 64)
    x = _inception(g, x, "inception4e", 528, 256, 160, 320, 32, 128, 128)
    x = g.max_pool(x, "maxpool4", 2, stride=2, ceil_mode=True)
    x = _inception(g, x, "inception5a", 832, 256, 160, 320, 32, 128, 128)
    x = _inception(g, x, "inception5b", 832, 384, 192, 384, 48, 128, 128)
    x = g.global_avg_pool_flatten(x, "avgpool")  # dropout(0.2) is the identity at inference
    g.linear(x, "fc", 1024, 1000, output="output")
    return g.to_model("googlenet", MODELS["googlenet"].description, (1, 3, 224, 224), (1, 1000), dynamic_batch)


# ---- AlexNet -----------------------------------------------------------------------------------------------


def _alexnet(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.relu(g.conv("input", "features.0", 3, 64, 11, stride=4, pad=2))
    x = g.max_pool(x, "features.2", 3, stride=2)
    x = g.relu(g.conv(x, "features.3", 64, 192, 5, pad=2))
    x = g.max_pool(x, "features.5", 3, stride=2)
    x = g.relu(g.conv(x, "features.6", 192, 384, 3, pad=1))
    x = g.relu(g.conv(x, "features.8", 384, 256, 3, pad=1))
    x = g.relu(g.conv(x, "features.10", 256, 256, 3, pad=1))
    x = g.max_pool(x, "features.12", 3, stride=2)
    # AdaptiveAvgPool2d((6, 6)) is the identity on the 6x6 map a 224x224 input gives; dropouts are omitted.
    x = g.flatten(x, "flatten")
    x = g.relu(g.linear(x, "classifier.1", 256 * 6 * 6, 4096))
    x = g.relu(g.linear(x, "classifier.4", 4096, 4096))
    g.linear(x, "classifier.6", 4096, 1000, output="output")
    return g.to_model("alexnet", MODELS["alexnet"].description, (1, 3, 224, 224), (1, 1000), dynamic_batch)


# ---- MobileNetV2 -------------------------------------------------------------------------------------------

# torchvision's inverted-residual settings (width 1.0): expansion t, output channels c, repeats n, first stride s.
_MOBILENET_V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def _conv_bn_relu6(  # pylint: disable=too-many-arguments
    g: Graph, x: str, name: str, cin: int, cout: int, kernel: int, stride: int = 1, group: int = 1
) -> str:
    """torchvision's Conv2dNormActivation(activation_layer=ReLU6): ``{name}.0`` the conv, ``{name}.1`` the BN."""
    x = g.conv(x, f"{name}.0", cin, cout, kernel, stride=stride, pad=(kernel - 1) // 2, bias=False, group=group)
    return g.relu6(g.batch_norm(x, f"{name}.1", cout))


def _inverted_residual(g: Graph, x: str, name: str, cin: int, cout: int, stride: int, expand: int) -> str:
    """torchvision's InvertedResidual: 1x1 expansion (not when t=1), 3x3 depthwise, linear 1x1 projection."""
    hidden = cin * expand
    y, i = x, 0  # i: index of the depthwise layer in torchvision's ``conv`` Sequential
    if expand != 1:
        y, i = _conv_bn_relu6(g, y, f"{name}.conv.0", cin, hidden, 1), 1
    y = _conv_bn_relu6(g, y, f"{name}.conv.{i}", hidden, hidden, 3, stride=stride, group=hidden)
    y = g.conv(y, f"{name}.conv.{i + 1}", hidden, cout, 1, bias=False)
    y = g.batch_norm(y, f"{name}.conv.{i + 2}", cout)
    return g.add(x, y, f"{name}.add") if stride == 1 and cin == cout else y


def _mobilenet_v2(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = _conv_bn_relu6(g, "input", "features.0", 3, 32, 3, stride=2)
    cin, index = 32, 1
    for expand, cout, repeats, stride in _MOBILENET_V2_SETTINGS:
        for block in range(repeats):
            x = _inverted_residual(g, x, f"features.{index}", cin, cout, stride if block == 0 else 1, expand)
            cin, index = cout, index + 1
    x = _conv_bn_relu6(g, x, f"features.{index}", cin, 1280, 1)
    x = g.global_avg_pool_flatten(x, "avgpool")  # dropout(0.2) is the identity at inference
    g.linear(x, "classifier.1", 1280, 1000, output="output")
    return g.to_model("mobilenet_v2", MODELS["mobilenet_v2"].description, (1, 3, 224, 224), (1, 1000), dynamic_batch)


# ---- tiny nets ---------------------------------------------------------------------------------------------


def _tiny_cnn_graph(
    seed: int, dynamic_batch: bool, name: str, size: int, c1: int, c2: int, classes: int
) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.relu(g.conv("input", "conv1", 3, c1, 3, pad=1))
    x = g.max_pool(x, "pool", 2, stride=2)
    x = g.relu(g.conv(x, "conv2", c1, c2, 3, pad=1))
    x = g.global_avg_pool_flatten(x, "avgpool")
    g.linear(x, "fc", c2, classes, output="output")
    return g.to_model(name, MODELS[name].description, (1, 3, size, size), (1, classes), dynamic_batch)


def _tiny_cnn(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    return _tiny_cnn_graph(seed, dynamic_batch, "tiny-cnn", size=16, c1=8, c2=16, classes=10)


def _tiny_cnn_b(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    return _tiny_cnn_graph(seed, dynamic_batch, "tiny-cnn-b", size=24, c1=12, c2=24, classes=5)


def _tiny_resnet(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.conv_bn_relu("input", "stem", 3, 8, 3, pad=1)
    y = g.batch_norm(g.conv(x, "block.conv", 8, 8, 3, pad=1, bias=False), "block.bn", 8)
    x = g.relu(g.add(x, y, "block.add"))
    x = g.global_avg_pool_flatten(x, "avgpool")
    g.linear(x, "fc", 8, 10, output="output")
    return g.to_model("tiny-resnet", MODELS["tiny-resnet"].description, (1, 3, 16, 16), (1, 10), dynamic_batch)


def _tiny_mobile(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.hard_swish(g.batch_norm(g.conv("input", "stem.conv", 3, 8, 3, pad=1, bias=False), "stem.bn", 8))
    x = g.hard_swish(g.batch_norm(g.conv(x, "block1.dw", 8, 8, 3, pad=1, bias=False, group=8), "block1.dw_bn", 8))
    x = g.hard_swish(g.batch_norm(g.conv(x, "block1.pw", 8, 16, 1, bias=False), "block1.pw_bn", 16))
    x = g.conv(x, "block2.dw", 16, 16, 3, stride=2, pad=1, bias=False, group=16)
    x = g.hard_swish(g.batch_norm(x, "block2.dw_bn", 16))
    x = g.conv(x, "block2.pw", 16, 32, 1, bias=False)  # no BatchNorm after it: a conv that keeps no bias
    x = g.global_avg_pool_flatten(x, "avgpool")
    g.linear(x, "fc", 32, 10, output="output")
    return g.to_model("tiny-mobile", MODELS["tiny-mobile"].description, (1, 3, 16, 16), (1, 10), dynamic_batch)


def _tiny_mlp(seed: int, dynamic_batch: bool) -> onnx.ModelProto:
    g = Graph(seed)
    x = g.relu(g.linear("input", "fc1", 64, 32))
    g.linear(x, "fc2", 32, 10, output="output")
    return g.to_model("tiny-mlp", MODELS["tiny-mlp"].description, (1, 64), (1, 10), dynamic_batch)


# ---- registry and public API -------------------------------------------------------------------------------

MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in [
        ZooModel(
            "resnet50",
            "torchvision resnet50 (v1.5), random weights: 25,557,032 parameters, input 1x3x224x224",
            (1, 3, 224, 224),
            _resnet50,
        ),
        ZooModel(
            "googlenet",
            "torchvision googlenet (aux_logits=False, transform_input=False), random weights: "
            "6,624,904 parameters, input 1x3x224x224",
            (1, 3, 224, 224),
            _googlenet,
        ),
        ZooModel(
            "alexnet",
            "torchvision alexnet, random weights: 61,100,840 parameters, input 1x3x224x224",
            (1, 3, 224, 224),
            _alexnet,
        ),
        ZooModel(
            "mobilenet_v2",
            "torchvision mobilenet_v2 (width 1.0), random weights: 3,504,872 parameters, input 1x3x224x224",
            (1, 3, 224, 224),
            _mobilenet_v2,
        ),
        ZooModel(
            "tiny-cnn",
            "conv3x3(3->8)+relu, maxpool 2x2, conv3x3(8->16)+relu, global avg pool, gemm(16->10); input 1x3x16x16",
            (1, 3, 16, 16),
            _tiny_cnn,
        ),
        ZooModel(
            "tiny-cnn-b",
            "tiny-cnn's operators at other shapes: conv3x3(3->12)+relu, maxpool 2x2, conv3x3(12->24)+relu, "
            "global avg pool, gemm(24->5); input 1x3x24x24",
            (1, 3, 24, 24),
            _tiny_cnn_b,
        ),
        ZooModel(
            "tiny-resnet",
            "ResNet's operators, tiny: conv3x3(3->8)+batchnorm+relu, a residual block conv3x3(8->8)+batchnorm "
            "+add+relu, global avg pool, gemm(8->10); input 1x3x16x16",
            (1, 3, 16, 16),
            _tiny_resnet,
        ),
        ZooModel(
            "tiny-mobile",
            "MobileNet's operators, tiny: conv3x3(3->8)+batchnorm+hardswish, depthwise conv3x3(8)+batchnorm"
            "+hardswish, conv1x1(8->16)+batchnorm+hardswish, depthwise conv3x3(16, stride 2)+batchnorm+hardswish, "
            "conv1x1(16->32, no bias), global avg pool, gemm(32->10); input 1x3x16x16",
            (1, 3, 16, 16),
            _tiny_mobile,
        ),
        ZooModel(
            "tiny-mlp",
            "gemm(64->32)+relu, gemm(32->10); input 1x64",
            (1, 64),
            _tiny_mlp,
        ),
    ]
}


def _lookup(name: str) -> ZooModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(MODELS)}") from None


def build(name: str, seed: int = 0, dynamic_batch: bool = False) -> onnx.ModelProto:
    """Build zoo model ``name`` with weights drawn from ``np.random.default_rng(seed)``.

    With ``dynamic_batch=True`` the first dimension of ``input`` and ``output`` is the symbol ``N``.
    Raises ``ValueError`` (naming the known models) for an unknown name.

    Example
    -------
    >>> from tvmc_transfer.frontends.zoo import build
    >>> model = build("tiny-cnn", seed=0, dynamic_batch=True)
    >>> model.graph.input[0].type.tensor_type.shape.dim[0].dim_param
    'N'
    >>> build("vgg16")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown zoo model 'vgg16'; known models: resnet50, googlenet, alexnet, mobilenet_v2, tiny-cnn, ...
    """
    return _lookup(name).build(seed, dynamic_batch)


def save(name: str, path: str, seed: int = 0, dynamic_batch: bool = False) -> str:
    """Build zoo model ``name`` and write it to ``path`` atomically (``atomic_write``).

    Missing parent directories are created. Returns ``path``.

    Example
    -------
    >>> import os, tempfile
    >>> from tvmc_transfer.frontends.zoo import save
    >>> path = save("tiny-mlp", os.path.join(tempfile.mkdtemp(), "tiny-mlp.onnx"))
    >>> os.path.getsize(path) > 0
    True
    """
    model = build(name, seed=seed, dynamic_batch=dynamic_batch)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with atomic_write(path, "wb") as f:
        f.write(model.SerializeToString())
    return path


def count_parameters(model: onnx.ModelProto) -> int:
    """Count parameters the way torchvision does (``sum(p.numel() for p in model.parameters())``).

    That is every initializer element (conv and gemm weights and biases, BatchNorm scale and bias) except the
    BatchNorm running mean and running variance, which are buffers in PyTorch, not parameters, and ReLU6's
    clip bounds, which are constants.

    Example
    -------
    >>> from tvmc_transfer.frontends.zoo import build, count_parameters
    >>> count_parameters(build("resnet50"))
    25557032
    """
    buffers = {name for node in model.graph.node if node.op_type == "BatchNormalization" for name in node.input[3:5]}
    buffers.update(RELU6_BOUNDS)
    return sum(
        int(np.prod(init.dims, dtype=np.int64)) for init in model.graph.initializer if init.name not in buffers
    )
