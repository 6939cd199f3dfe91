"""The pyfunc logged as code (MLflow's models-from-code): MLflow runs this file to
build the model object, so no pickled Python object is ever stored or loaded."""
from mlflow.models import set_model

from xstilts.tracking.pyfunc import XstiltsPyfunc

set_model(XstiltsPyfunc())
