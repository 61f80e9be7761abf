"""``tvmc run``: run a package, print its timing, save its outputs, verify it against ONNX Runtime."""

from ..errors import TVMCException
from ..run.remote import DEVICES, Remote
from .common import save_npz
from .registry import register_parser


@register_parser
def add_run_parser(subparsers, main_parser, json_config):
    parser = subparsers.add_parser("run", help="run a compiled package", description="Run a package made by 'tvmc compile'.")
    parser.add_argument("package", metavar="PACKAGE", help="package file")
    parser.add_argument("-i", "--inputs", metavar="X.npz", help="input tensors by name (others are filled)")
    parser.add_argument("-o", "--outputs", metavar="Y.npz", help="write the outputs here")
    parser.add_argument("--fill-mode", choices=("zeros", "ones", "random"), default="random", help="inputs not given (default random)")
    parser.add_argument("--print-time", action="store_true", help="print mean, median, max, min, std over --repeat")
    parser.add_argument("--time-format", choices=("table", "line"), default="table", help="--print-time as tvmc 0.19's table (default) or one line")
    parser.add_argument("--end-to-end", action="store_true", help="time from host arrays to host arrays, copies to and from the device included")
    parser.add_argument("--profile", action="store_true", help="print a table of the time each kernel takes (over --repeat runs)")
    parser.add_argument("--device", choices=DEVICES, help="device to run on (default: the package target's)")
    parser.add_argument("--rpc-tracker", metavar="HOST[:PORT]", help="run on a remote device through this RPC tracker (port 9090 if not given)")
    parser.add_argument("--rpc-key", metavar="KEY", help="the device key registered with the tracker")
    parser.add_argument("--print-top", type=int, metavar="N", help="print the N largest entries of each output")
    parser.add_argument("--number", type=int, default=10, help="runs per timed measurement (default 10)")
    parser.add_argument("--repeat", type=int, default=10, help="timed measurements with --print-time (default 10)")
    parser.add_argument("--verify", metavar="MODEL.onnx", help="compare with ONNX Runtime on the same inputs; fail on a mismatch")
    parser.add_argument("--rtol", type=float, default=1e-4, help="largest relative error --verify accepts (default 1e-4)")
    parser.set_defaults(func=drive_run)


def drive_run(args) -> int:
    from ..run.module import RunPlace, load_inputs, run_module, top_n, verify_with_onnxruntime
    from ..run.profiling import format_profile

    if args.number < 1 or args.repeat < 1:
        raise TVMCException("--number and --repeat must be at least 1")
    if args.rpc_key and not args.rpc_tracker:
        raise TVMCException("--rpc-key needs --rpc-tracker HOST[:PORT]")
    remote = Remote(args.rpc_tracker, args.rpc_key) if args.rpc_tracker else None
    place = RunPlace(args.device, remote, args.end_to_end, args.repeat if args.profile else 0)
    given = load_inputs(args.inputs) if args.inputs else None
    result = run_module(
        args.package, given, args.fill_mode, number=args.number, repeat=args.repeat if args.print_time else 0, place=place
    )
    if args.outputs:
        save_npz(args.outputs, result.outputs)
    if args.print_top:
        for name, values in result.outputs.items():
            print(f"{name} top {args.print_top}: " + ", ".join(f"[{i}] {v:.6g}" for i, v in top_n(values, args.print_top)))
    if args.print_time and args.time_format == "line":
        print("execution time (ms): " + "  ".join(f"{k} {v:.4f}" for k, v in result.time_summary().items()))
    elif args.print_time:
        print(result.time_table())
    if args.profile:
        print(format_profile(result.profile))
    if args.verify:
        from ..build.package import read_package  # pylint: disable=import-outside-toplevel
        from ..run.module import make_inputs

        inputs = make_inputs(read_package(args.package).metadata.inputs, given, args.fill_mode)
        checks = verify_with_onnxruntime(args.verify, inputs, result.outputs, args.rtol)
        for c in checks:
            verdict = "ok" if c.ok else "MISMATCH"
            print(f"verify {c.name}: max abs error {c.max_abs_error:.3g}, relative error {c.relative_error:.3g} (rtol {args.rtol:g}): {verdict}")
        bad = [c.name for c in checks if not c.ok]
        if bad:
            raise TVMCException(f"outputs {', '.join(bad)} differ from ONNX Runtime beyond --rtol {args.rtol:g}")
    return 0
