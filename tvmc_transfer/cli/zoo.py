"""``tvmc zoo``: write a bundled model (seeded random weights) as an ONNX file; nothing is downloaded."""

from ..errors import TVMCException
from .common import check_output_folder
from .registry import register_parser


@register_parser
def add_zoo_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser(
        "zoo",
        help="write a bundled ONNX model (ResNet-50, GoogLeNet, AlexNet, MobileNetV2, tiny test nets)",
        description="Write one of the bundled models, built offline with seeded random weights; 'list' lists them.",
    )
    parser.add_argument("name", metavar="NAME", help="model name, or 'list'")
    parser.add_argument("-o", "--output", metavar="FILE.onnx", help="file to write (default NAME.onnx)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--dynamic-batch", action="store_true", help="make the batch dimension symbolic ('N')")
    parser.set_defaults(func=drive_zoo)


def drive_zoo(args) -> int:
    from ..frontends import zoo  # pylint: disable=import-outside-toplevel

    if args.name == "list":
        for model in zoo.MODELS.values():
            print(f"{model.name:<12} {'x'.join(map(str, model.input_shape)):<14} {model.description}")
        return 0
    if args.name not in zoo.MODELS:
        raise TVMCException(f"unknown zoo model '{args.name}'; known: {', '.join(zoo.MODELS)} (or 'list')")
    output = args.output or f"{args.name}.onnx"
    check_output_folder(output, "model")
    zoo.save(args.name, output, seed=args.seed, dynamic_batch=args.dynamic_batch)
    print(f"wrote {output}: {zoo.MODELS[args.name].description}")
    return 0
