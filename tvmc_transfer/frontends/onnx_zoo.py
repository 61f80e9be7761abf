"""The ONNX model zoo's classic networks that ship inside the onnx wheel, as real models nobody here wrote.

``onnx/backend/test/data/light/light_*.onnx`` holds nine model-zoo networks (opset 9, their exporters' graphs:
Caffe2 and CNTK-era batch norms, ``Dropout``, ``LRN``, ``Sum``, channel shuffles, per-channel ``Mul``/``Add``),
each weight written as a ``ConstantOfShape`` of one value. They are the project's check that a default holds on
graphs it was not developed on. ``with_random_weights`` replaces every ``ConstantOfShape`` by a seeded random
initializer of its shape, so that a numeric check against ONNX Runtime sees every weight's position.

>>> sorted(LIGHT_MODELS)[:3]
['bvlc_alexnet', 'densenet121', 'inception_v1']
"""

import os

import numpy as np

from ..errors import TVMCException

LIGHT_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet", "squeezenet", "vgg19", "zfnet512")


def light_path(name: str) -> str:
    """The file of the light model ``name`` inside the installed onnx package."""
    import onnx  # pylint: disable=import-outside-toplevel


    path = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")
    if not os.path.isfile(path):
        raise TVMCException(f"the installed onnx package has no light model '{name}' ({path}); known: {', '.join(LIGHT_MODELS)}")
    return path


def with_random_weights(model, seed: int = 0):
    """A copy of ``model`` whose ``ConstantOfShape`` weights are seeded random initializers: He-normal for
    tensors of two or more dimensions (convolution and dense weights), uniform in [0.5, 1.5] for vectors (biases,
    batch-norm scales, means and variances: positive, so a variance stays one)."""
    import onnx  # pylint: disable=import-outside-toplevel
    from onnx import numpy_helper

    rng = np.random.default_rng(seed)
    model = onnx.ModelProto.FromString(model.SerializeToString())
    known = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        if node.op_type != "ConstantOfShape" or node.input[0] not in known:
            kept.append(node)
            continue
        shape = tuple(int(d) for d in known[node.input[0]])
        value = next((numpy_helper.to_array(a.t) for a in node.attribute if a.name == "value"), np.zeros(1, np.float32))
        if len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            data = rng.normal(0.0, np.sqrt(2.0 / max(fan_in, 1)), shape)
        else:
            data = rng.uniform(0.5, 1.5, shape)
        model.graph.initializer.append(numpy_helper.from_array(data.astype(value.dtype), node.output[0]))
        if model.ir_version < 4:  # before IR 4 every initializer is also a graph input
            model.graph.input.append(onnx.helper.make_tensor_value_info(node.output[0], model.graph.initializer[-1].data_type, shape))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    used = {name for node in kept for name in node.input}
    for unused in [init for init in model.graph.initializer if init.name not in used]:  # the shapes of the weights
        model.graph.initializer.remove(unused)
        for inp in [i for i in model.graph.input if i.name == unused.name]:
            model.graph.input.remove(inp)
    return model
