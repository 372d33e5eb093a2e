"""The code file MLflow logs with the model (models-from-code): it names the pyfunc to load.

MLflow runs this file when it loads the model, so loading needs the songrec package installed
(as in the API's image) but no pickled class definitions.
"""

from mlflow.models import set_model

from songrec.models.pyfunc import SongrecPyfunc

set_model(SongrecPyfunc())
