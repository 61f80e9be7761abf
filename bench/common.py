"""Helpers shared by the benchmark scripts: timing a package and ONNX Runtime side by side in one process."""

import json
import os
import statistics
import time

import numpy as np

from tvmc_transfer.build.lowering import Lowering

# The committed zoo records (bench/work/<model>-records) were tuned without weight prepacking, in ONNX's NCHW:
# the scripts that resume or read them lower models the same way, so the records keep matching and results
# stay comparable with BENCHMARKS.
RECORDS_LOWERING = Lowering(weight_prepack=False, layout="NCHW")


def add_lowering_argument(parser) -> None:
    """``--lowering``: the committed NCHW records' (``records``, the default) or ``tvmc tune``'s own (``product``)."""
    parser.add_argument("--lowering", choices=("records", "product"), default="records",
                        help="records: NCHW without prepacking, as the committed <model>-records (default); "
                             "product: as tvmc tune by default (NHWC and prepacked weights on x86 CPUs with AVX2)")


def lowering_of(args) -> Lowering:
    """The ``Lowering`` that ``--lowering`` names."""
    return RECORDS_LOWERING if args.lowering == "records" else Lowering()

BENCH = os.path.dirname(os.path.abspath(__file__))
# The zoo's tuned records (<model>-records: hours of tuning, committed) and the results BENCHMARKS.md cites.
RECORDS = os.path.join(BENCH, "work")
# What a script regenerates (models, packages, the records of transfers and arms): kept out of the tree.
WORK = os.path.join(os.path.expanduser("~"), ".cache", "tvmc-transfer-bench")


def add_folder_arguments(parser, work: str, records: bool = False) -> None:
    """``--work`` for a script's derived outputs (under ``WORK`` by default) and, with ``records``, ``--records``
    for the zoo's tuned records it reads (and tunes on, resumably, when they are short)."""
    parser.add_argument("--work", default=os.path.join(WORK, work), help="folder for derived outputs, resumable (default %(default)s)")
    if records:
        parser.add_argument("--records", default=RECORDS, help="folder of the zoo's tuned <model>-records (default: bench/work, committed)")


def model_file(name: str, folder: str) -> str:
    """``name`` when it is an ONNX file; ``onnx-zoo:NAME`` the onnx wheel's light model NAME with seeded random
    weights (``tvmc_transfer.frontends.onnx_zoo``), saved as ``folder/onnx-zoo-NAME.onnx``; else the zoo model ``name``
    saved as ``folder/<name>.onnx`` (once)."""
    import onnx  # pylint: disable=import-outside-toplevel

    from tvmc_transfer.frontends import onnx_zoo, zoo

    if os.path.isfile(name):
        return name
    if name.startswith("onnx-zoo:"):
        light = name.split(":", 1)[1]
        path = os.path.join(folder, f"onnx-zoo-{light}.onnx")
        if not os.path.isfile(path):
            onnx.save(onnx_zoo.with_random_weights(onnx.load(onnx_zoo.light_path(light))), path)
        return path
    path = os.path.join(folder, f"{name}.onnx")
    return path if os.path.isfile(path) else zoo.save(name, path)


def records_folder(path: str) -> str:
    """``path``, unpacked first from ``path.tar.xz`` when only the archive is there (``records.archive.unpacked``:
    large records sets are committed compressed); a folder that the archive contradicts stops the script with an
    ``Error:`` line."""
    from tvmc_transfer.errors import TVMCException  # pylint: disable=import-outside-toplevel
    from tvmc_transfer.records.archive import unpacked

    try:
        return unpacked(path)
    except TVMCException as err:
        raise SystemExit(f"Error: {err}") from None


def add_records_tag_argument(parser) -> None:
    """``--records-tag``: which of the zoo's records sets a script reads (``tagged_records``)."""
    parser.add_argument("--records-tag", default="", metavar="TAG", help="read RECORDS/<model>-TAG-records (unpacked from .tar.xz), for example znver3-nhwc")


def add_transfer_pair_arguments(parser, work: str) -> None:
    """A transfer between two zoo models: ``SOURCE:TARGET``, ``--target``, which records (``--records``,
    ``--records-tag``), ``--lowering`` and ``--work``."""
    parser.add_argument("pair", help="SOURCE:TARGET zoo models, e.g. googlenet:resnet50")
    parser.add_argument("--target", default="native")
    add_records_tag_argument(parser)
    add_lowering_argument(parser)
    add_folder_arguments(parser, work, records=True)


def tagged_records(args, name: str) -> str:
    """The records folder of zoo model ``name`` that ``--records`` and ``--records-tag`` name (``records_folder``)."""
    tag = f"-{args.records_tag}" if args.records_tag else ""
    return records_folder(os.path.join(args.records, f"{name}{tag}-records"))


def median_ms(fn, repeat: int = 30, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def onnxruntime_runner(model_path: str, inputs: dict, threads: int):
    import onnxruntime as ort  # pylint: disable=import-outside-toplevel

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, inputs)


def openvino_runner(model_path: str, inputs: dict, threads: int):
    """OpenVINO on the CPU as its users run it for latency (``pip install openvino``), or None when it is not
    installed: the other engine a CPU user would pick."""
    try:
        import openvino as ov  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    compiled = ov.Core().compile_model(model_path, "CPU", config)
    request = compiled.create_infer_request()
    return lambda: request.infer(inputs)


def package_runner(package_path: str, inputs: dict):
    """A callable that runs the package once (inputs already on the device), and its metadata."""
    import tvm  # pylint: disable=import-outside-toplevel
    from tvm import relax

    from tvmc_transfer.build.package import read_package

    package = read_package(package_path)
    vm = relax.VirtualMachine(package.load(), tvm.cpu())
    args = [tvm.runtime.tensor(inputs[i.name]) for i in package.metadata.inputs]
    main = vm["main"]
    return (lambda: main(*args)), package


def against_onnxruntime(model_path: str, model, packages: dict, repeat: int, slow=(), with_openvino: bool = False) -> tuple:
    """``(median ms, relative error)``, each by label, of the ``packages`` (label -> package file) and of ONNX
    Runtime (label ``onnxruntime``; with ``with_openvino``, OpenVINO too when installed) on the same random inputs, timed in 3 interleaved rounds so that drift on a
    shared machine hits all alike; the ``slow`` labels (unscheduled packages) get fewer runs per round."""
    inputs = random_inputs(model)
    runs = {label: package_runner(package, inputs)[0] for label, package in packages.items()}
    run_ort = onnxruntime_runner(model_path, inputs, threads())
    reference = run_ort()[0]
    errors = {label: float(np.max(np.abs(run().numpy() - reference)) / np.max(np.abs(reference))) for label, run in runs.items()}
    run_openvino = openvino_runner(model_path, inputs, threads()) if with_openvino else None
    times = {"onnxruntime": [], **({"openvino": []} if run_openvino else {}), **{label: [] for label in runs}}
    for _ in range(3):
        times["onnxruntime"].append(median_ms(run_ort, repeat))
        if run_openvino:
            times["openvino"].append(median_ms(run_openvino, repeat))
        for label, run in runs.items():
            times[label].append(median_ms(run, max(3, repeat // 10), warmup=1) if label in slow else median_ms(run, repeat))
    return {k: float(np.median(v)) for k, v in times.items()}, errors


def read_state(path: str) -> dict:
    """A resumable script's state (its finished steps) from the JSON file ``path``; empty when there is none yet."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def write_state(path: str, state: dict) -> None:
    """Write ``state`` to ``path`` whole or not at all, so that a stopped run resumes from its last finished step."""
    from tvmc_transfer.atomic import atomic_write  # pylint: disable=import-outside-toplevel

    with atomic_write(path) as f:
        json.dump(state, f, indent=1)


def append_json(path: str | None, row: dict) -> None:
    """Append ``row`` as one line to the JSON-lines file ``path`` (``--json``), if one was given."""
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


def threads() -> int:
    """ONNX Runtime's intra-op threads: one per physical core, as its own default and as TVM's pool here
    (``tvmc_transfer/threads.py``), so both sides run on the same cores."""
    from tvmc_transfer.threads import physical_cores  # pylint: disable=import-outside-toplevel

    return physical_cores()


def random_inputs(model, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal(i.shape).astype(i.dtype) for i in model.inputs}


def processor() -> str:
    """This machine's processor as a result names it: ``lscpu``'s model name, family and model, LLVM's ``-mcpu``."""
    from tvmc_transfer.target import native_target  # pylint: disable=import-outside-toplevel

    fields = {}
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    return (f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}), -mcpu={native_target().get('mcpu', '?')}, {len(os.sched_getaffinity(0))} cores")
