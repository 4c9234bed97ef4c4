"""Serving the example MLP without torch: read a `torch.save` state_dict with numpy and run the layers.

`TabularReasoning` uses this so that a serving process never imports torch (about 210 MiB of
RSS and 1.7 s of start-up for a network of a few thousand weights). Only what `torch.save`
writes for a state_dict of plain CPU tensors is understood (the zip format: `data.pkl` whose
only globals are `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2` and the typed
storages, and little-endian `data/<key>` files); anything else gives None and the caller loads
the file with torch as before. Unpickling is restricted to those names, like
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import collections
import pickle
import re
import zipfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np

_STORAGES: dict[str, str] = {
    "BoolStorage": "?",
    "ByteStorage": "u1",
    "CharStorage": "i1",
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "IntStorage": "<i4",
    "LongStorage": "<i8",
    "ShortStorage": "<i2",
}
_LAYER = re.compile(r"^(\d+)\.(weight|bias)$")


class _StorageType(str):
    """A typed storage's name (`FloatStorage`), as `find_class` hands it to `persistent_load`."""


class _Unpickler(pickle.Unpickler):
    def __init__(self, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(archive.open(f"{prefix}data.pkl"))
        self._archive = archive
        self._prefix = prefix

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGES:
            return _StorageType(name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a plain tensor state_dict entry")

    def persistent_load(self, pid: Any) -> Any:
        import numpy as np  # deferred: keep `import runtime_agent.examples` light

        kind, storage_type, key, _location, _numel = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        data = self._archive.read(f"{self._prefix}data/{key}")
        return np.frombuffer(data, dtype=np.dtype(_STORAGES[storage_type]))


def _rebuild_tensor(
    storage: np.ndarray, offset: int, size: Any, stride: Any, *_ignored: Any, **_kw: Any
) -> np.ndarray:
    import numpy as np

    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[offset:], shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)  # a writable copy that owns its memory


def read_state_dict(path: Path) -> dict[str, np.ndarray] | None:
    """The tensors of a `torch.save(state_dict)` file as numpy arrays, or None if not understood."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") == 1), None)
            if pkl is None:
                return None
            prefix = pkl.removesuffix("data.pkl")
            if f"{prefix}byteorder" in names and archive.read(f"{prefix}byteorder") != b"little":
                return None
            state = _Unpickler(archive, prefix).load()
    except (OSError, zipfile.BadZipFile, pickle.UnpicklingError, KeyError, ValueError, TypeError):
        return None
    if not isinstance(state, dict):
        return None
    return {str(k): v for k, v in state.items()}


def sequential_layers(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """`(weight.T, bias)` per Linear of an `nn.Sequential` state_dict, or None for other shapes."""
    found: dict[int, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        match = _LAYER.match(key)
        if match is None:
            return None
        found.setdefault(int(match[1]), {})[match[2]] = value
    if sorted(found) != list(range(0, 2 * len(found), 2)):  # Linear, ReLU, Linear, ... (build_mlp)
        return None
    layers = []
    for index in sorted(found):
        params = found[index]
        weight, bias = params.get("weight"), params.get("bias")
        if weight is None or bias is None or weight.ndim != 2 or bias.shape != weight.shape[:1]:
            return None
        layers.append((weight.T.copy(), bias))
    return layers or None


CHUNK_ROWS = 128
"""Rows per matrix product: below OpenBLAS's threading threshold for layers this small. Its threads
cost far more than they save here (12 ms instead of 0.14 ms for 512 rows on two busy cores)."""


def mlp_probabilities(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Softmax of `Linear -> ReLU -> ... -> Linear` over the rows of `x` (float32 like torch)."""
    import numpy as np

    if len(x) > CHUNK_ROWS:
        chunks = [_forward(layers, x[i : i + CHUNK_ROWS]) for i in range(0, len(x), CHUNK_ROWS)]
        return np.concatenate(chunks)
    return _forward(layers, x)


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> np.ndarray:
    import numpy as np

    h = x
    for i, (weight_t, bias) in enumerate(layers):
        h = h @ weight_t + bias
        if i < len(layers) - 1:
            np.maximum(h, 0, out=h)
    h = h - h.max(axis=1, keepdims=True)
    np.exp(h, out=h)
    h /= h.sum(axis=1, keepdims=True)
    return h
