"""``Graph``: writes one ONNX graph layer by layer, with seeded random weights (the zoo's models use it)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
"""The ONNX opset every zoo model imports (TVM 0.27's ``from_onnx`` converts all its operators)."""

IR_VERSION = 8
"""The ONNX IR version that goes with opset 17; old enough for any ONNX Runtime that knows opset 17."""

BATCH_DIM = "N"
"""The symbolic name of the batch dimension when a model is built with ``dynamic_batch=True``."""

RELU6_BOUNDS = ("relu6.min", "relu6.max")
"""The initializers that hold ReLU6's clip bounds 0 and 6: constants, not parameters (``zoo.count_parameters``)."""

# Random-weight scales. He-normal (fan-in) keeps the activation variance roughly constant through a
# conv+ReLU, and the BatchNorms stay close to the identity (gamma ~ 1, beta and running mean ~ 0, running var
# in 0.8..1.2), so activations neither explode nor vanish; see zoo's _RESNET50_BRANCH_GAIN for the residual sums.
_BIAS_STD = 0.01
_BN_GAMMA_STD = 0.05
_BN_BETA_STD = 0.05
_BN_MEAN_STD = 0.05
_BN_VAR_RANGE = (0.8, 1.2)


class Graph:
    """Collects the nodes and initializers of one ONNX graph; each method adds a layer and returns its output.

    Value names are the layer names, so the graph reads like torchvision's module tree. Weights come from
    one ``np.random.default_rng(seed)`` stream, drawn in graph order, so a seed fixes every weight.
    """

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    # ---- weights ---------------------------------------------------------------------------------------

    def _param(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(array, dtype=np.float32), name))
        return name

    def _he_normal(self, name: str, shape: Sequence[int], fan_in: int, gain: float = 1.0) -> str:
        return self._param(name, self.rng.normal(0.0, gain * np.sqrt(2.0 / fan_in), size=shape))

    def _bias(self, name: str, size: int) -> str:
        return self._param(name, self.rng.normal(0.0, _BIAS_STD, size=size))

    # ---- layers ----------------------------------------------------------------------------------------

    def _node(self, op: str, inputs: Sequence[str], name: str, **attributes) -> str:
        self.nodes.append(helper.make_node(op, list(inputs), [name], name=name, **attributes))
        return name

    def conv(
        self,
        x: str,
        name: str,
        cin: int,
        cout: int,
        kernel: int,
        stride: int = 1,
        pad: int = 0,
        bias: bool = True,
        gain: float = 1.0,
        group: int = 1,
    ) -> str:
        """A square ``kernel`` x ``kernel`` convolution with symmetric padding, weights ``{name}.weight``.

        The weights are He-normal times ``gain``. ``group=cin`` (with ``cout == cin``) makes it depthwise.
        """
        fan_in = cin // group * kernel * kernel
        weight = self._he_normal(f"{name}.weight", (cout, cin // group, kernel, kernel), fan_in=fan_in, gain=gain)
        inputs = [x, weight]
        if bias:
            inputs.append(self._bias(f"{name}.bias", cout))
        # The group attribute only when it is not ONNX's default 1, so the older models stay byte for byte the same.
        grouped = {"group": group} if group != 1 else {}
        return self._node(
            "Conv", inputs, name, kernel_shape=[kernel, kernel], strides=[stride, stride], pads=[pad] * 4, **grouped
        )

    def batch_norm(self, x: str, name: str, channels: int, eps: float = 1e-5) -> str:
        """An inference BatchNormalization with near-identity scale, bias, running mean and running var."""
        rng = self.rng
        inputs = [
            x,
            self._param(f"{name}.weight", 1.0 + rng.normal(0.0, _BN_GAMMA_STD, size=channels)),
            self._param(f"{name}.bias", rng.normal(0.0, _BN_BETA_STD, size=channels)),
            self._param(f"{name}.running_mean", rng.normal(0.0, _BN_MEAN_STD, size=channels)),
            self._param(f"{name}.running_var", rng.uniform(*_BN_VAR_RANGE, size=channels)),
        ]
        return self._node("BatchNormalization", inputs, name, epsilon=eps)

    def relu(self, x: str) -> str:
        return self._node("Relu", [x], f"{x}.relu")

    def relu6(self, x: str) -> str:
        """torchvision's ReLU6 as ``Clip(x, 0, 6)``; since opset 11 the bounds are inputs: two shared scalars."""
        if RELU6_BOUNDS[0] not in {init.name for init in self.initializers}:
            self._param(RELU6_BOUNDS[0], np.float32(0.0))
            self._param(RELU6_BOUNDS[1], np.float32(6.0))
        return self._node("Clip", [x, *RELU6_BOUNDS], f"{x}.relu6")

    def hard_swish(self, x: str) -> str:
        """``x * relu6(x + 3) / 6``: ONNX's HardSwish (opset 14), which TVM 0.27's ONNX frontend imports."""
        return self._node("HardSwish", [x], f"{x}.hardswish")

    def conv_bn_relu(
        self, x: str, name: str, cin: int, cout: int, kernel: int, stride: int = 1, pad: int = 0, eps: float = 1e-5
    ) -> str:
        """Conv (no bias) + BatchNorm + ReLU; with ``eps=0.001`` this is torchvision's GoogLeNet BasicConv2d."""
        x = self.conv(x, f"{name}.conv", cin, cout, kernel, stride, pad, bias=False)
        return self.relu(self.batch_norm(x, f"{name}.bn", cout, eps))

    def max_pool(self, x: str, name: str, kernel: int, stride: int, pad: int = 0, ceil_mode: bool = False) -> str:
        return self._node(
            "MaxPool",
            [x],
            name,
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
            ceil_mode=int(ceil_mode),
        )

    def add(self, a: str, b: str, name: str) -> str:
        return self._node("Add", [a, b], name)

    def concat(self, xs: Sequence[str], name: str) -> str:
        return self._node("Concat", xs, name, axis=1)

    def global_avg_pool_flatten(self, x: str, name: str) -> str:
        """AdaptiveAvgPool2d((1, 1)) + flatten(1): (N, C, H, W) -> (N, C)."""
        return self._node("Flatten", [self._node("GlobalAveragePool", [x], name)], f"{name}.flatten", axis=1)

    def flatten(self, x: str, name: str) -> str:
        return self._node("Flatten", [x], name, axis=1)

    def linear(self, x: str, name: str, fin: int, fout: int, output: str | None = None) -> str:
        """torchvision's nn.Linear: ``x @ weight.T + bias`` with weight of shape (fout, fin)."""
        weight = self._he_normal(f"{name}.weight", (fout, fin), fan_in=fin)
        bias = self._bias(f"{name}.bias", fout)
        return self._node("Gemm", [x, weight, bias], output or name, transB=1)

    # ---- the model -------------------------------------------------------------------------------------

    def to_model(
        self,
        name: str,
        description: str,
        input_shape: Sequence[int],
        output_shape: Sequence[int],
        dynamic_batch: bool,
    ) -> onnx.ModelProto:
        """Wrap the graph as an opset-17 model with one input ``input`` and one output ``output``."""
        batch = BATCH_DIM if dynamic_batch else input_shape[0]
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, *input_shape[1:]])],
            [helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, *output_shape[1:]])],
            initializer=self.initializers,
            doc_string=description,
        )
        model = helper.make_model(
            graph,
            producer_name="tvmc_transfer.frontends.zoo",
            opset_imports=[helper.make_opsetid("", OPSET)],
            doc_string=description,
        )
        model.ir_version = IR_VERSION
        return model
