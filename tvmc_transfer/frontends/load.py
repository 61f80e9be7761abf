"""Model loading: one small class per format, guessed from the file suffix unless ``--model-format`` says.

Each frontend turns a model file into a Relax ``IRModule`` with its weights bound as constants, plus the
names, shapes and dtypes of its inputs and outputs. Heavy frameworks are imported only when used.
"""

import abc
import hashlib
import os
import re

import attrs

from ..errors import TVMCException, one_line
from .onnx_static import computes_shapes, make_static
from .simplify import simplify_for_inference


@attrs.frozen
class TensorInfo:
    """Name, static shape and dtype of one model input or output."""

    name: str
    shape: tuple
    dtype: str

    def to_json(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, data: dict) -> "TensorInfo":
        return cls(data["name"], tuple(data["shape"]), data["dtype"])


@attrs.frozen
class TVMCModel:
    """A loaded model: the Relax module and what it takes and gives."""

    mod: object  # tvm.IRModule, weights bound as constants, simplified for inference (simplify.py)
    inputs: tuple  # of TensorInfo
    outputs: tuple  # of TensorInfo
    path: str
    format: str
    digest: str  # sha256 of the model file, to tie records and packages to their model


class Frontend(abc.ABC):
    """A model format: the interface every frontend implements (name, suffixes, load)."""

    @staticmethod
    @abc.abstractmethod
    def name() -> str:
        """The ``--model-format`` value that picks this frontend."""

    @staticmethod
    @abc.abstractmethod
    def suffixes() -> tuple:
        """File suffixes that guess this frontend (``(".onnx",)``)."""

    @abc.abstractmethod
    def load(self, path: str, shapes: dict) -> tuple:
        """Return ``(relax_module, [TensorInfo of inputs], [output names])``."""


class OnnxFrontend(Frontend):
    """ONNX files, through ``tvm.relax.frontend.onnx.from_onnx``."""

    @staticmethod
    def name():
        return "onnx"

    @staticmethod
    def suffixes():
        return (".onnx",)

    def load(self, path, shapes):
        import onnx  # pylint: disable=import-outside-toplevel

        try:
            model = onnx.load(path)
            onnx.checker.check_model(model)
        except Exception as err:  # protobuf DecodeError, checker ValidationError, ...
            raise TVMCException(f"{path} is not a valid ONNX model: {one_line(err)}") from None
        initializers = {init.name for init in model.graph.initializer}
        graph_inputs = [inp for inp in model.graph.input if inp.name not in initializers]
        _check_shape_names(shapes, [inp.name for inp in graph_inputs])
        inputs = [_onnx_input_info(inp, shapes) for inp in graph_inputs]
        if computes_shapes(model):  # Reshape targets from Shape: fold them while the input shapes are known
            model = make_static(model, {i.name: i.shape for i in inputs})
        from tvm.relax.frontend.onnx import from_onnx  # pylint: disable=import-outside-toplevel

        try:
            mod = from_onnx(model, shape_dict={i.name: list(i.shape) for i in inputs}, keep_params_in_input=False)
        except Exception as err:
            raise TVMCException(f"TVM cannot import {path}: {one_line(err)}") from None
        return mod, inputs, [out.name for out in model.graph.output]


class PyTorchFrontend(Frontend):
    """``torch.export`` programs saved with ``torch.export.save`` (``.pt2``); needs torch installed."""

    @staticmethod
    def name():
        return "pytorch"

    @staticmethod
    def suffixes():
        return (".pt2",)

    def load(self, path, shapes):
        try:
            import torch  # pylint: disable=import-outside-toplevel
        except ImportError:
            raise TVMCException("loading a PyTorch model needs torch: pip install torch, or export to ONNX") from None
        from tvm.relax.frontend.torch import from_exported_program  # pylint: disable=import-outside-toplevel

        try:
            program = torch.export.load(path)
        except Exception as err:
            raise TVMCException(f"{path} is not a torch.export program: {one_line(err)}") from None
        placeholders = [s for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
        names = [s.arg.name for s in placeholders]
        _check_shape_names(shapes, names)
        examples = program.example_inputs[0] if program.example_inputs else ()
        inputs = [
            TensorInfo(n, tuple(shapes.get(n, tuple(e.shape))), str(e.dtype).replace("torch.", ""))
            for n, e in zip(names, examples)
        ]
        try:
            mod = from_exported_program(program, keep_params_as_input=False)
        except Exception as err:
            raise TVMCException(f"TVM cannot import {path}: {one_line(err)}") from None
        return mod, inputs, [f"output{i}" for i in range(len(program.graph_signature.user_outputs))]


FRONTENDS = (OnnxFrontend, PyTorchFrontend)


def get_frontend(path: str, model_format: str | None = None) -> Frontend:
    """The frontend named by ``model_format``, or else the one whose suffix ``path`` has."""
    if model_format:
        for frontend in FRONTENDS:
            if frontend.name() == model_format:
                return frontend()
        known = ", ".join(f.name() for f in FRONTENDS)
        raise TVMCException(f"unknown model format '{model_format}'; known formats: {known}")
    suffix = os.path.splitext(path)[1].lower()
    for frontend in FRONTENDS:
        if suffix in frontend.suffixes():
            return frontend()
    known = ", ".join(f"{s} ({f.name()})" for f in FRONTENDS for s in f.suffixes())
    raise TVMCException(f"cannot guess the format of '{path}' from its suffix; use --model-format ({known})")


# One "name:[d0,d1,...]": a name may hold colons (TensorFlow's "input:0"), as in tvmc 0.19, but no space or bracket.
_INPUT_SHAPE = re.compile(r"\s*([^\s\[\]]+?)\s*:\s*\[([^\]]*)\]\s*,?")
_MAX_DIM = 2**63 - 1  # ONNX dimensions are int64


def parse_input_shapes(text: str | None) -> dict:
    """Parse ``"input:[1,3,224,224] mask:[1,128]"`` into ``{"input": (1, 3, 224, 224), ...}``.

    >>> parse_input_shapes("input_1:0:[1, 3, 224, 224], mask:[1,128]")
    {'input_1:0': (1, 3, 224, 224), 'mask': (1, 128)}
    """
    text = (text or "").strip()
    shapes, pos = {}, 0
    while pos < len(text):
        match = _INPUT_SHAPE.match(text, pos)
        if not match:
            raise TVMCException(f"cannot parse --input-shapes '{text}'; write it as name:[1,3,224,224] name2:[1,10]")
        name, dims = match.group(1), [d.strip() for d in match.group(2).split(",") if d.strip()]
        if not all(re.fullmatch(r"[0-9]+", d) and 0 < int(d) <= _MAX_DIM for d in dims):
            raise TVMCException(f"--input-shapes: dimensions of '{name}' must be positive integers, got [{match.group(2)}]")
        if name in shapes:
            raise TVMCException(f"--input-shapes gives '{name}' twice")
        shapes[name] = tuple(int(d) for d in dims)
        pos = match.end()
    return shapes


def load_model(path: str, model_format: str | None = None, input_shapes: dict | str | None = None) -> TVMCModel:
    """Load a model file into a ``TVMCModel``.

    >>> model = load_model("resnet50.onnx", input_shapes="input:[1,3,224,224]")   # doctest: +SKIP
    """
    if not os.path.isfile(path):
        raise TVMCException(f"model file '{path}' not found")
    frontend = get_frontend(path, model_format)
    shapes = parse_input_shapes(input_shapes) if isinstance(input_shapes, str) or input_shapes is None else dict(input_shapes)
    mod, inputs, output_names = frontend.load(path, shapes)
    mod = simplify_for_inference(mod)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    outputs = _output_infos(mod, output_names)
    return TVMCModel(mod, tuple(inputs), outputs, os.path.abspath(path), frontend.name(), digest)


def _check_shape_names(shapes: dict, names: list) -> None:
    unknown = sorted(set(shapes) - set(names))
    if unknown:
        raise TVMCException(f"--input-shapes names unknown input(s) {', '.join(unknown)}; the model's inputs are: {', '.join(names)}")


def _onnx_input_info(value_info, shapes: dict) -> TensorInfo:
    from onnx import helper  # pylint: disable=import-outside-toplevel

    tensor_type = value_info.type.tensor_type
    dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type).name
    if value_info.name in shapes:
        given = shapes[value_info.name]
        if len(given) != len(tensor_type.shape.dim):
            raise TVMCException(
                f"--input-shapes gives '{value_info.name}' {len(given)} dimensions, the model has {len(tensor_type.shape.dim)}"
            )
        return TensorInfo(value_info.name, tuple(given), dtype)
    dims = []
    for dim in tensor_type.shape.dim:
        if not dim.HasField("dim_value") or dim.dim_value <= 0:
            raise TVMCException(
                f"input '{value_info.name}' has a dynamic dimension ('{dim.dim_param or '?'}'); "
                f"give its shape with --input-shapes {value_info.name}:[1,3,224,224]"
            )
        dims.append(dim.dim_value)
    return TensorInfo(value_info.name, tuple(dims), dtype)


def _output_infos(mod, names: list) -> tuple:
    from tvm import relax  # pylint: disable=import-outside-toplevel

    ret = mod["main"].ret_ty
    fields = ret.fields if isinstance(ret, relax.TupleType) else [ret]
    infos = []
    for i, sinfo in enumerate(fields):
        shape = tuple(int(d) for d in sinfo.shape.values) if sinfo.shape is not None else ()
        name = names[i] if i < len(names) else f"output{i}"
        infos.append(TensorInfo(name, shape, str(sinfo.dtype)))
    return tuple(infos)
