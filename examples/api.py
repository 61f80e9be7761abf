"""The Python API mirrors the commands: load -> tune -> compile -> run, checked against ONNX Runtime.

Run: python examples/api.py
"""

import tempfile

from tvmc_transfer import MeasureOptions, TuneOptions, compile_model, load_model, parse_target, run_module, tune_model, zoo
from tvmc_transfer.run.module import make_inputs, verify_with_onnxruntime

with tempfile.TemporaryDirectory() as work:
    path = zoo.save("tiny-cnn", f"{work}/tiny.onnx")
    model = load_model(path)
    target = parse_target("native")
    report = tune_model(model, target, f"{work}/records", TuneOptions(trials=32, measure=MeasureOptions(min_repeat_ms=5)))
    print(report.summary())
    compile_model(model, target, f"{work}/tiny.tar", records=f"{work}/records")
    result = run_module(f"{work}/tiny.tar", fill_mode="random", repeat=10, number=10)
    print("median latency (ms):", result.time_summary()["median"])
    inputs = make_inputs(model.inputs, None, "random")
    for check in verify_with_onnxruntime(path, inputs, result.outputs):
        print(f"{check.name}: relative error {check.relative_error:.2e} -> {'ok' if check.ok else 'MISMATCH'}")
