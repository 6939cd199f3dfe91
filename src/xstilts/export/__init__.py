"""ONNX export of trained models (every task family) and the ONNX Runtime model that serves them.

``xstilts export --model models:/xstilts-target-panx@champion`` traces the model's head
(:meth:`xstilts.families.base.TaskFamily.export_module`) with dynamic batch and sequence
axes, optionally quantizes it to int8, checks it against PyTorch (logits on real
sentences in a dozen languages, the task metric on English and two low-resource
languages) and registers the bundle as ``xstilts-serve-TASK`` (:mod:`.exporter`).
"""
