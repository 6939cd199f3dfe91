"""The ONNX pyfunc logged as code (models-from-code): nothing pickled is stored or loaded."""
from mlflow.models import set_model

from xstilts.tracking.onnx_pyfunc import XstiltsOnnxPyfunc

set_model(XstiltsOnnxPyfunc())
