"""The model server's infer path: a V2 body -> input rows -> a shared predict call -> response bytes.

`Engine` belongs to one loaded model. It decodes each request against the model's declared
inputs (`runtime_agent.v2`; the binary tensor extension in `runtime_agent.v2_binary`), so a
request that fails validation fails alone, then hands the rows to the model's `Batcher`
(`runtime_agent.serve_batching`). A batch's rows become one DataFrame and one
`operator.predict` call in a worker thread (an `async def predict` runs on the loop); its output
is split back into each request's rows. A model that answers a batch with a different number of
rows than it was given is asked again one request at a time.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from pydantic_core import to_json

from runtime_agent.compat import as_frame
from runtime_agent.errors import describe_exception
from runtime_agent.serve_batching import BatchConfig, Batcher, WorkerThread
from runtime_agent.v2 import (
    BadRequest,
    Declared,
    InferenceRequest,
    Rows,
    decode,
    frame_of,
    output_columns,
    select,
)
from runtime_agent.v2_binary import binary_inputs, column_bytes, split_body, wants_binary

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    from runtime_agent.v2 import OutputColumn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer: status, body bytes and extra headers."""

    status: int
    body: bytes
    headers: Mapping[str, str] | None = None


def _json(content: Any) -> bytes:
    """Compact UTF-8 JSON (pydantic-core's encoder: ten times `json.dumps` for lists of floats)."""
    return to_json(content)


def error(status: int, message: str) -> Answer:
    """`{"error": message}` with `status`."""
    return Answer(status, _json({"error": message}))


@dataclass(frozen=True, slots=True)
class Piece:
    """One request's rows `start:stop` of its batch's output columns."""

    columns: list[OutputColumn]
    start: int
    stop: int


def _pieces(out: Any, parts: list[Rows]) -> list[Piece] | None:
    """Split a batch's predict output into each part's rows (None: the row count does not match)."""
    frame = as_frame(out)
    columns = output_columns(frame)
    if len(parts) == 1:
        return [Piece(columns, 0, len(frame))]
    if len(frame) != sum(p.n for p in parts):
        return None
    pieces, at = [], 0
    for part in parts:
        pieces.append(Piece(columns, at, at + part.n))
        at += part.n
    return pieces


def _predict_sync(fn: Callable[..., Any], parts: list[Rows]) -> Any:
    out = fn(frame_of(parts))
    return out if inspect.isawaitable(out) else _pieces(out, parts)


def parse(body: bytes, header_length: str | None) -> tuple[InferenceRequest, dict[str, bytes]]:
    """The request a body holds, and the bytes of its binary inputs.

    Raises:
        BadRequest: not a V2 inference request.
    """
    head, tail = split_body(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(head)
    except ValidationError as exc:
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
        message = errors[0]["msg"] if errors else "invalid"
        raise BadRequest(f"invalid inference request: {where + ': ' if where else ''}{message}") from None
    return request, binary_inputs(request, tail) if header_length is not None else {}


class Engine:
    """Answers infer requests for one loaded model (its operator), batching concurrent ones.

    Args:
        operator: the loaded reasoning operator (`predict(df) -> df`, optional `signature()`).
        config: the batching knobs (from the model's modelConf).
    """

    def __init__(self, operator: Any, config: BatchConfig) -> None:
        self.operator = operator
        sig_fn = getattr(operator, "signature", None)
        sig = (sig_fn() if callable(sig_fn) else None) or {}
        self.inputs: list[dict[str, Any]] = list(sig.get("inputs", []))
        self.outputs: list[dict[str, Any]] = list(sig.get("outputs", []))
        self.declared = Declared.of(self.inputs)
        self.batcher: Batcher[Rows, Piece] = Batcher(
            self._run, config, rows=lambda r: r.n, key=lambda r: r.key
        )
        self.worker = WorkerThread("atom-predict")
        """Runs the predicts (sync ones), one batch at a time."""

    def metadata_inputs(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The metadata's `inputs` (the `[-1, K]` tensor when there is one) and `parameters`."""
        matrix = self.declared.matrix_tensor()
        if matrix is None:
            return self.inputs, {}
        return [matrix], {"column_inputs": self.inputs}

    async def _run(self, parts: list[Rows]) -> list[Piece | BaseException]:
        fn = self.operator.predict
        if inspect.iscoroutinefunction(fn):
            pieces = _pieces(await fn(frame_of(parts)), parts)
        else:
            done = await self.worker.run(_predict_sync, fn, parts)
            pieces = _pieces(await done, parts) if inspect.isawaitable(done) else done
        if pieces is not None:
            return list(pieces)
        logger.warning(
            "predict gave a different row count for %d requests: answering them one by one", len(parts)
        )
        alone: list[Piece | BaseException] = []
        for part in parts:
            try:
                alone.extend(await self._run([part]))
            except Exception as exc:
                alone.append(exc)
        return alone

    async def answer(
        self, read: Callable[[], Awaitable[bytes]], header_length: str | None, *, name: str, version: str
    ) -> Answer:
        """The answer to one infer request.

        Args:
            read: returns the request's body.
            header_length: its `Inference-Header-Content-Length` header, if any.
            name: the model name the request used (the response says it back).
            version: the model's version.
        """
        try:
            with self.batcher.arriving():
                request, raw = parse(await read(), header_length)
                rows = decode(request, self.declared, raw)
        except BadRequest as exc:
            return error(400, str(exc))
        try:
            piece = await self.batcher.submit(rows)
            return _encode(piece, request, name=name, version=version)
        except BadRequest as exc:
            return error(400, str(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, f"the model refused the inputs: {describe_exception(exc)}")
        except Exception as exc:
            logger.error("predict failed: %s", describe_exception(exc), exc_info=exc)
            return error(500, f"the model failed: {describe_exception(exc)}")

    async def aclose(self) -> None:
        """Stop batching and the predict thread (the server is shutting down)."""
        await self.batcher.aclose()
        await self.worker.aclose()


def _encode(piece: Piece, request: InferenceRequest, *, name: str, version: str) -> Answer:
    wanted = [o.name for o in request.outputs] if request.outputs else None
    columns = select(piece.columns, wanted)
    binary = wants_binary(request)
    n = piece.stop - piece.start
    outputs: list[dict[str, Any]] = []
    blobs: list[bytes] = []
    for column in columns:
        tensor: dict[str, Any] = {"name": column.name, "shape": [n], "datatype": column.datatype}
        if binary.get(column.name, binary[""]):
            blob = column_bytes(column, piece.start, piece.stop)
            tensor["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            tensor["data"] = column.values[piece.start : piece.stop]
        outputs.append(tensor)
    head = _json(
        {
            "model_name": name,
            "model_version": version,
            "id": request.id or str(uuid.uuid4()),
            "outputs": outputs,
        }
    )
    if not blobs:
        return Answer(200, head)
    return Answer(200, head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))})
