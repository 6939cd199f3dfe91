"""HTTP serving of exported models: an ASGI app (FastAPI) over ONNX Runtime (:mod:`.app`)."""
