"""tvmc-transfer: the tvmc compiler driver for TVM's Relax era, with droplet search and transfer-tuning."""

from setuptools import find_packages, setup

setup(
    name="tvmc-transfer",
    version="0.1.0",
    description="tvmc for Apache TVM 0.27 (Relax + MetaSchedule): tune, compile and run ONNX models",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["tvmc_transfer", "tvmc_transfer.*"]),
    install_requires=[
        "apache-tvm==0.27.0.post1",
        # 0.1.15.x segfaults in every IR serialization with TVM 0.27 (see PLATFORM.md, trap 1).
        "apache-tvm-ffi==0.1.14.post1",
        "onnx>=1.16",
        "onnxruntime>=1.18",
        "numpy>=1.24",
        "attrs>=23.1",
        "scipy>=1.10",
        # What MetaSchedule needs but does not declare: popen pools and the XGBoost cost model.
        "psutil>=5.9",
        "cloudpickle>=2.0",
        "xgboost-cpu>=2.0",
    ],
    # tornado: only for the RPC tracker the tests start on loopback; the RPC client does not need it.
    extras_require={"test": ["pytest>=7", "tornado>=6"]},
    entry_points={"console_scripts": ["tvmc = tvmc_transfer.main:main"]},
)
