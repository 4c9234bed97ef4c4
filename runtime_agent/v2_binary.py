"""The OIP binary tensor extension: tensor bytes after the JSON header, in requests and responses.

A request whose body is `JSON header + raw bytes` says the header's length in the
`Inference-Header-Content-Length` HTTP header; each input sent that way has
`parameters.binary_data_size` (its byte count) instead of `data`, and the inputs' bytes follow
in input order. Numbers are little-endian, BOOL one byte each, BYTES elements a 4-byte
little-endian length and then the bytes. An output comes back the same way when the request
asks (`parameters.binary_data` on the output, else `parameters.binary_data_output` on the
request): the response then carries that header too, and the output `binary_data_size`.
This is what tritonclient's HTTP client sends and expects.
"""

from __future__ import annotations

import struct
import sys
from typing import TYPE_CHECKING, Any

from runtime_agent.v2 import V2_DTYPES, BadRequest

if TYPE_CHECKING:
    import numpy as np

    from runtime_agent.v2 import InferenceRequest, OutputColumn

HEADER = "inference-header-content-length"


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the bytes after it (none without the HTTP header).

    Raises:
        BadRequest: the header's length is not a number within the body.
    """
    if header_length is None:
        return body, b""
    try:
        cut = int(header_length)
    except ValueError:
        cut = -1
    if not 0 <= cut <= len(body):
        raise BadRequest(
            f"Inference-Header-Content-Length {header_length!r} is not a length within "
            f"the {len(body)}-byte body"
        )
    return body[:cut], body[cut:]


def binary_inputs(request: InferenceRequest, tail: bytes) -> dict[str, bytes]:
    """Input name -> its bytes, for the inputs that declare `parameters.binary_data_size`.

    Raises:
        BadRequest: the sizes do not add up to the bytes after the header, or one has data too.
    """
    found: dict[str, bytes] = {}
    at = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if not isinstance(size, int) or size < 0:
            raise BadRequest(f"input {tensor.name!r}: binary_data_size must be a byte count, got {size!r}")
        if tensor.data is not None:
            raise BadRequest(f"input {tensor.name!r} has both data and binary_data_size")
        if at + size > len(tail):
            raise BadRequest(
                f"input {tensor.name!r}: binary_data_size {size} goes past "
                f"the {len(tail)} bytes after the header"
            )
        found[tensor.name] = tail[at : at + size]
        at += size
    if at != len(tail):
        raise BadRequest(
            f"{len(tail)} bytes follow the JSON header, but the inputs' binary_data_size add up to {at}"
        )
    return found


def tensor_from_bytes(name: str, datatype: str, raw: bytes) -> np.ndarray:
    """A flat array of one input's bytes.

    Raises:
        BadRequest: the byte count does not fit the datatype.
    """
    import numpy as np  # deferred: keep `import runtime_agent` light

    if datatype == "BYTES":
        return np.asarray(_strings(name, raw), dtype=object)
    dtype = np.dtype(V2_DTYPES[datatype]).newbyteorder("<")
    if len(raw) % dtype.itemsize:
        raise BadRequest(f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} values")
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))  # a native, writable copy


def _strings(name: str, raw: bytes) -> list[Any]:
    values: list[Any] = []
    at = 0
    while at < len(raw):
        if at + 4 > len(raw):
            raise BadRequest(f"input {name!r}: BYTES element {len(values)} has a cut length prefix")
        (size,) = struct.unpack_from("<I", raw, at)
        item = raw[at + 4 : at + 4 + size]
        if len(item) != size:
            raise BadRequest(f"input {name!r}: BYTES element {len(values)} is cut short")
        try:
            values.append(item.decode("utf-8"))
        except UnicodeDecodeError:
            values.append(item)
        at += 4 + size
    return values


def wants_binary(request: InferenceRequest) -> dict[str, bool]:
    """Output name -> binary or not, as the request asked; `""` holds the request-wide default."""
    default = bool((request.parameters or {}).get("binary_data_output", False))
    choice = {"": default}
    for output in request.outputs or ():
        flag = (output.parameters or {}).get("binary_data")
        choice[output.name] = default if flag is None else bool(flag)
    return choice


def column_bytes(column: OutputColumn, start: int, stop: int) -> bytes:
    """Rows `start:stop` of an output column, encoded as the binary extension says."""
    if column.array is not None and column.datatype != "BYTES":
        part = column.array[start:stop]
        if part.dtype.byteorder == ">" or (part.dtype.byteorder == "=" and sys.byteorder == "big"):
            part = part.astype(part.dtype.newbyteorder("<"))
        return part.tobytes()
    chunks = []
    for value in column.values[start:stop]:
        data = value if isinstance(value, bytes) else b"" if value is None else str(value).encode("utf-8")
        chunks.append(struct.pack("<I", len(data)) + data)
    return b"".join(chunks)
