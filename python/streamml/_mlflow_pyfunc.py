"""The MLflow model of a logged streamml binary, as MLflow's models-from-code loads it (no pickle).

:func:`streamml.mlflow.log_model` logs this file as the ``python_model``; MLflow runs it when the
model is loaded, and :class:`streamml.mlflow.BinaryPyfunc` then loads the binary artifact.
"""

import mlflow.models

from streamml.mlflow import BinaryPyfunc

mlflow.models.set_model(BinaryPyfunc())
