"""Open Inference Protocol (V2) codec: request bodies -> input rows, model output -> response tensors.

Tensor mapping (a V2 request is a set of tensors; Atom models take and return DataFrames):

- Matrix form (what a generic OIP client builds from the model's metadata): a single input
  with shape `[N, K]`; its columns are named by `parameters.columns` (K names), else by the
  model's declared inputs when there are K of them (other widths are refused: `expected 7
  features, got 4`), else `x0 .. x{K-1}` for a model that declares none.
- Column form: each input tensor is one column, `name` = column name, `shape` `[N]` or
  `[N, 1]`, `data` the N values (row-major, nested lists are flattened). Every input must have
  the same N. A model's declared inputs must all be there; extra columns pass through.
- `datatype` is one of BOOL, INT8-64, UINT8-64, FP16/32/64, BYTES (strings) and sets the dtype;
  any numeric type is taken for a numeric input, BYTES only for a BYTES one.
- Data comes as JSON `data`, or as raw little-endian bytes after the JSON header (the binary
  tensor extension, `runtime_agent.v2_binary`).
- Response: one output tensor per column of the model's output DataFrame, `shape [N]`,
  datatype from the column's dtype (strings/objects as BYTES, NaN as null). A request's
  `outputs: [{"name": ...}]` selects columns. The response echoes the request `id`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

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
MATRIX_INPUT = "input"
"""The name metadata gives the one `[-1, K]` tensor of a model (any name is accepted)."""


class RequestInput(BaseModel):
    """One V2 input tensor (`data` is absent when its bytes follow the JSON header)."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any] | None = None
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


@dataclass(frozen=True)
class Declared:
    """The inputs a model declares in its `signature()`: names and V2 datatypes (may be none)."""

    names: tuple[str, ...] = ()
    datatypes: tuple[str, ...] = ()
    required: frozenset[str] = frozenset()

    @classmethod
    def of(cls, tensors: Sequence[Mapping[str, Any]]) -> Declared:
        """From the signature's input tensors (`optional: true` ones may be left out).

        Only column-shaped inputs (`[-1]` or `[-1, 1]`) are checked: a model that declares
        other shapes describes its own tensors, and requests go to it as they come.
        """
        if not all(_column_shaped(list(t.get("shape") or [-1])) for t in tensors):
            return cls()
        names = tuple(str(t.get("name")) for t in tensors)
        types = tuple(str(t.get("datatype") or "").upper() for t in tensors)  # "": not said, not checked
        required = frozenset(str(t.get("name")) for t in tensors if not t.get("optional"))
        return cls(names, types, required)

    def matrix_tensor(self) -> dict[str, Any] | None:
        """The `[-1, K]` tensor that carries every declared input, when they are K >= 2 numbers."""
        if len(self.names) < 2 or not all(_numeric(t) for t in self.datatypes):
            return None
        datatype = self.datatypes[0] if len(set(self.datatypes)) == 1 else "FP64"
        return {
            "name": MATRIX_INPUT,
            "datatype": datatype,
            "shape": [-1, len(self.names)],
            "parameters": {"columns": list(self.names)},
        }

    def expected_type(self, name: str) -> str | None:
        """The declared datatype of input `name` (None when not declared)."""
        try:
            return self.datatypes[self.names.index(name)]
        except ValueError:
            return None


def _column_shaped(shape: list[Any]) -> bool:
    return len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)


def _numeric(datatype: str) -> bool:
    return datatype in V2_DTYPES and datatype != "BYTES"


@dataclass(slots=True)
class Rows:
    """One request's input rows: column names and a 1-D array each, or one `[N, K]` matrix."""

    names: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    matrix: np.ndarray | None
    n: int

    @property
    def key(self) -> tuple[Any, ...]:
        """Requests with equal keys concatenate into one DataFrame (same columns and dtypes)."""
        if self.matrix is not None:
            return ("matrix", self.names, self.matrix.dtype.str)
        return ("columns", self.names, tuple(a.dtype.str for a in self.arrays))


def frame_of(parts: Sequence[Rows]) -> pd.DataFrame:
    """One DataFrame of the rows of `parts` (equal keys), in order.

    Numbers of one dtype become one 2-D block with a cached column index: building the index
    from a list of names costs pandas (string inference) five times the frame itself.
    """
    import numpy as np  # deferred: keep `import runtime_agent` light
    import pandas as pd

    first = parts[0]
    if first.matrix is not None:
        matrices = [p.matrix for p in parts if p.matrix is not None]
        matrix = matrices[0] if len(matrices) == 1 else np.concatenate(matrices)
        return pd.DataFrame(matrix, columns=_column_index(first.names))
    columns = [
        first.arrays[i] if len(parts) == 1 else np.concatenate([p.arrays[i] for p in parts])
        for i in range(len(first.names))
    ]
    if columns and len({c.dtype for c in columns}) == 1 and columns[0].dtype.kind in "biuf":
        return pd.DataFrame(np.column_stack(columns), columns=_column_index(first.names))
    return pd.DataFrame(dict(zip(first.names, columns, strict=True)))


_INDEXES: dict[tuple[str, ...], Any] = {}


def _column_index(names: tuple[str, ...]) -> pd.Index:
    index = _INDEXES.get(names)
    if index is None:
        import pandas as pd

        if len(_INDEXES) >= 256:  # requests name their own columns: keep the cache small
            _INDEXES.clear()
        index = _INDEXES[names] = pd.Index(list(names))
    return index


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


def _array(tensor: RequestInput, raw: bytes | None) -> np.ndarray:

    datatype = tensor.datatype.upper()
    if datatype not in V2_DTYPES:
        raise BadRequest(
            f"input {tensor.name!r}: unknown datatype {tensor.datatype!r} (valid: {', '.join(V2_DTYPES)})"
        )
    if any(d < 0 for d in tensor.shape):
        raise BadRequest(f"input {tensor.name!r}: shape {tensor.shape} has a negative dimension")
    if raw is not None:
        from runtime_agent.v2_binary import tensor_from_bytes

        arr = tensor_from_bytes(tensor.name, datatype, raw)
    elif tensor.data is None:
        raise BadRequest(f"input {tensor.name!r} has no data (nor parameters.binary_data_size)")
    else:
        arr = _json_array(tensor.name, datatype, tensor.data)
    expected = math.prod(tensor.shape) if tensor.shape else arr.size
    if expected != arr.size:
        raise BadRequest(
            f"input {tensor.name!r}: shape {tensor.shape} needs {expected} values, got {arr.size}"
        )
    return arr.reshape(tensor.shape) if tensor.shape else arr


def _json_array(name: str, datatype: str, data: list[Any]) -> np.ndarray:
    import numpy as np

    dtype = V2_DTYPES[datatype]
    try:
        if datatype != "BYTES":
            try:  # regular nesting converts in one call; ragged nesting is flattened below
                return np.asarray(data, dtype=dtype).reshape(-1)
            except ValueError:
                if not any(isinstance(v, list) for v in data):
                    raise
        return np.asarray(_flatten(data), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"input {name!r}: data is not {datatype}: {exc}") from exc


def _check_type(tensor: RequestInput, declared: Declared, expected: str | None) -> None:
    if not expected or expected not in V2_DTYPES or tensor.datatype.upper() not in V2_DTYPES:
        return
    if _numeric(expected) != _numeric(tensor.datatype.upper()):
        raise BadRequest(f"input {tensor.name!r}: datatype {tensor.datatype}, expected {expected}")


def decode(request: InferenceRequest, declared: Declared, raw: Mapping[str, bytes] | None = None) -> Rows:
    """The input rows a V2 request describes (see the module docstring for the mapping).

    Args:
        request: the parsed body.
        declared: the model's declared inputs (checked: names, width, kind of datatype).
        raw: input name -> its bytes, for inputs sent with the binary tensor extension.

    Raises:
        BadRequest: the tensors do not describe rows this model takes (one line saying why).
    """
    raw = raw or {}
    first = request.inputs[0]
    width = len(declared.names)
    if len(request.inputs) == 1 and len(first.shape) == 2 and first.shape[1] != 1:
        k = first.shape[1]
        names = (first.parameters or {}).get("columns") or (request.parameters or {}).get("columns")
        if names is None:
            if width and k != width:
                raise BadRequest(f"input {first.name!r}: expected {width} features, got {k}")
            names = list(declared.names) if width else [f"x{i}" for i in range(k)]
        if not isinstance(names, list) or len(names) != k:
            raise BadRequest(f"input {first.name!r}: {k} columns, so parameters.columns must list {k} names")
        if declared.names and all(_numeric(t) for t in declared.datatypes):
            _check_type(first, declared, declared.datatypes[0])
        arr = _array(first, raw.get(first.name))
        return Rows(tuple(str(c) for c in names), (), arr, arr.shape[0])
    arrays: dict[str, np.ndarray] = {}
    rows: int | None = None
    for tensor in request.inputs:
        if len(tensor.shape) > 2 or (len(tensor.shape) == 2 and tensor.shape[1] != 1):
            matrix = f", or a single [-1, {width}] tensor" if width else ", or a single [N, K] tensor"
            raise BadRequest(
                f"input {tensor.name!r}: shape {tensor.shape}; expected [-1] per feature{matrix}"
            )
        if tensor.name in arrays:
            raise BadRequest(f"input {tensor.name!r} is given twice")
        _check_type(tensor, declared, declared.expected_type(tensor.name))
        arr = _array(tensor, raw.get(tensor.name)).reshape(-1)
        if rows is not None and len(arr) != rows:
            raise BadRequest(f"input {tensor.name!r} has {len(arr)} rows, other inputs have {rows}")
        rows = len(arr)
        arrays[tensor.name] = arr
    missing = [n for n in declared.names if n in declared.required and n not in arrays]
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise BadRequest(f"expected {width} features, got {len(arrays)} (missing: {shown})")
    return Rows(tuple(arrays), tuple(arrays.values()), None, rows or 0)


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


@dataclass
class OutputColumn:
    """One column of a batch's model output: its V2 datatype, JSON values and (numbers) array."""

    name: str
    datatype: str
    values: list[Any]
    array: np.ndarray | None


def output_columns(df: pd.DataFrame) -> list[OutputColumn]:
    """The model's output DataFrame as columns ready to slice per request."""
    import numpy as np

    columns = []
    for column, series in df.items():
        dtype = series.dtype
        array = None
        if isinstance(dtype, np.dtype) and dtype.kind in "biuf":
            datatype = _NUMPY_V2.get(dtype.str[1:]) or v2_datatype(dtype)
            array = series.to_numpy()
            if dtype.kind == "f" and not np.isfinite(array).all():
                values = [_json_value(v) for v in array.tolist()]
            else:
                values = array.tolist()
        else:
            datatype = v2_datatype(dtype)
            values = [_json_value(v) for v in series.tolist()]
        columns.append(OutputColumn(str(column), datatype, values, array))
    return columns


_NUMPY_V2 = {"b1": "BOOL", "i8": "INT64", "i4": "INT32", "f4": "FP32", "f8": "FP64"}


def select(columns: Sequence[OutputColumn], wanted: list[str] | None) -> list[OutputColumn]:
    """The columns a request asked for (all when it named none).

    Raises:
        BadRequest: a wanted output is not a column of the model's output.
    """
    if not wanted:
        return list(columns)
    names = [c.name for c in columns]
    unknown = [w for w in wanted if w not in names]
    if unknown:
        raise BadRequest(f"unknown output(s) {unknown}: the model returns {names}")
    return [c for c in columns if c.name in wanted]
