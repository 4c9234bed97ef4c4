"""The plain FastAPI handler of the serving benchmark: `python _serve_peer_fastapi.py PORT WEIGHTS`."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import uvicorn
from _serve_peer_mlp import NumpyMLP
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

app = FastAPI()
mlp = NumpyMLP(sys.argv[2]) if __name__ == "__main__" else None


@app.get("/v2/health/ready")
async def ready() -> dict[str, bool]:
    return {"ready": True}


@app.post("/v2/models/{name}/infer")
async def infer(name: str, request: Request) -> JSONResponse:
    assert mlp is not None
    tensor = (await request.json())["inputs"][0]
    x = np.asarray(tensor["data"], dtype="float32").reshape(tensor["shape"])
    classes, probs = mlp.predict(x)
    outputs: list[dict[str, Any]] = [
        {"name": "prediction", "datatype": "INT64", "shape": [len(x)], "data": classes.tolist()}
    ]
    outputs += [
        {"name": f"probability_{i}", "datatype": "FP32", "shape": [len(x)], "data": probs[:, i].tolist()}
        for i in range(probs.shape[1])
    ]
    return JSONResponse({"model_name": name, "outputs": outputs})


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
