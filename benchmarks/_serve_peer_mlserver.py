"""The MLServer 1.7.1 runtime of the serving benchmark: a custom `MLModel` with NumpyCodec (its own venv)."""

from __future__ import annotations

import numpy as np
from _serve_peer_mlp import NumpyMLP
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class BenchMLP(MLModel):
    """Serves `weights.npz` (the model settings' `parameters.uri`)."""

    async def load(self) -> bool:
        self.mlp = NumpyMLP(self.settings.parameters.uri)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = self.decode(payload.inputs[0], default_codec=NumpyCodec)
        classes, probs = self.mlp.predict(np.asarray(x).reshape(-1, 8))
        outputs = [NumpyCodec.encode_output("prediction", classes)]
        outputs += [NumpyCodec.encode_output(f"probability_{i}", probs[:, i]) for i in range(probs.shape[1])]
        return InferenceResponse(model_name=self.name, outputs=outputs)
