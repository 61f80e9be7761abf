"""Model loading: ONNX and ``torch.export`` files made static and simplified for inference (``load.py``,
``onnx_static.py``, ``simplify.py``), and the bundled models (``zoo.py`` written with ``onnx_graph.py``;
``onnx_zoo.py``, the onnx wheel's model-zoo networks)."""
