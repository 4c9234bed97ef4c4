"""Open Inference Protocol (V2) codec: request/response bodies and the tensor <-> DataFrame mapping.

Tensor mapping (a V2 request is a set of tensors; Atom models take and return DataFrames):

- Column form (preferred): each input tensor is one column, `name` = column name, `shape`
  `[N]` or `[N, 1]`, `data` the N values (row-major, nested lists are flattened).
  Every input must have the same N.
- Matrix form: a single input with shape `[N, K]`; its columns are named by
  `parameters.columns` (K names), else by the model's declared input names when there are K
  of them, else `x0 .. x{K-1}`.
- `datatype` is one of BOOL, INT8-64, UINT8-64, FP16/32/64, BYTES (strings) and sets the dtype.
- Response: one output tensor per column of the model's output DataFrame, `shape [N]`,
  datatype from the column's dtype (strings/objects as BYTES, NaN as null). A request's
  `outputs: [{"name": ...}]` selects columns. The response echoes the request `id`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

V2_DTYPES: dict[str, str] = {
    "BOOL": "bool",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "INT64": "int64",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
    "UINT64": "uint64",
    "FP16": "float16",
    "FP32": "float32",
    "FP64": "float64",
    "BYTES": "object",
}


class RequestInput(BaseModel):
    """One V2 input tensor."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]
    parameters: dict[str, Any] | None = None


class RequestOutput(BaseModel):
    """One requested V2 output."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """A V2 inference request body."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class BadRequest(ValueError):
    """A request the server refuses (400)."""


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _array(tensor: RequestInput) -> np.ndarray:
    import numpy as np  # deferred: keep `import runtime_agent` light

    datatype = tensor.datatype.upper()
    if datatype not in V2_DTYPES:
        raise BadRequest(
            f"input {tensor.name!r}: unknown datatype {tensor.datatype!r} (valid: {', '.join(V2_DTYPES)})"
        )
    flat = _flatten(tensor.data)
    expected = math.prod(tensor.shape) if tensor.shape else len(flat)
    if any(d < 0 for d in tensor.shape) or expected != len(flat):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} does not match {len(flat)} values")
    try:
        arr = np.asarray(flat, dtype=V2_DTYPES[datatype])
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"input {tensor.name!r}: data is not {datatype}: {exc}") from exc
    return arr.reshape(tensor.shape) if tensor.shape else arr


def request_frame(request: InferenceRequest, declared: list[str]) -> pd.DataFrame:
    """The DataFrame a V2 request describes (see the module docstring for the mapping)."""
    import pandas as pd  # deferred: keep `import runtime_agent` light

    first = request.inputs[0]
    if len(request.inputs) == 1 and len(first.shape) == 2 and first.shape[1] != 1:
        arr = _array(first)
        k = arr.shape[1]
        names = (first.parameters or {}).get("columns") or (request.parameters or {}).get("columns")
        if names is None:
            names = declared if len(declared) == k else [f"x{i}" for i in range(k)]
        if not isinstance(names, list) or len(names) != k:
            raise BadRequest(f"input {first.name!r}: {k} columns, so parameters.columns must list {k} names")
        return pd.DataFrame(arr, columns=[str(c) for c in names])
    columns: dict[str, Any] = {}
    rows: int | None = None
    for tensor in request.inputs:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            raise BadRequest(
                f"input {tensor.name!r}: shape {tensor.shape}; send one [N] tensor per column, "
                "or a single [N, K] tensor with parameters.columns"
            )
        arr = _array(tensor).reshape(-1)
        if rows is not None and len(arr) != rows:
            raise BadRequest(f"input {tensor.name!r} has {len(arr)} rows, other inputs have {rows}")
        if tensor.name in columns:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        rows = len(arr)
        columns[tensor.name] = arr
    return pd.DataFrame(columns)


def v2_datatype(dtype: Any) -> str:
    """The V2 datatype for a numpy/pandas dtype."""
    import numpy as np  # deferred: keep `import runtime_agent` light

    try:
        dt = np.dtype(dtype)
    except TypeError:
        return "BYTES"
    if dt.kind == "b":
        return "BOOL"
    if dt.kind in "iu":
        return f"{'INT' if dt.kind == 'i' else 'UINT'}{dt.itemsize * 8}"
    if dt.kind == "f":
        return f"FP{dt.itemsize * 8}"
    return "BYTES"


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def response_outputs(df: pd.DataFrame, wanted: list[str] | None) -> list[dict[str, Any]]:
    """V2 output tensors for each (wanted) column of the model's output DataFrame."""
    names = [str(c) for c in df.columns]
    if wanted:
        unknown = [w for w in wanted if w not in names]
        if unknown:
            raise BadRequest(f"unknown output(s) {unknown}: the model returns {names}")
    outputs = []
    for column, name in zip(df.columns, names, strict=True):
        if wanted and name not in wanted:
            continue
        series = df[column]
        datatype = v2_datatype(series.dtype)
        data = [_json_value(v) for v in series.tolist()]
        outputs.append({"name": name, "shape": [len(series)], "datatype": datatype, "data": data})
    return outputs
