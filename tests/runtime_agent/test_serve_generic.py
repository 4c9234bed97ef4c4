"""Generic OIP clients: tritonclient's HTTP client against `serve` on a real port (JSON, binary tensors)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from runtime_agent.serve import ModelServer, create_app, local_loader
from runtime_agent.v2 import BadRequest, InferenceRequest
from runtime_agent.v2_binary import binary_inputs, split_body, tensor_from_bytes
from tests.runtime_agent.conftest import tabular
from tests.runtime_agent.test_serve_batching import EXAMPLE, live_server


@pytest.fixture(scope="module")
def served(trained_example) -> Iterator[tuple[Any, Any]]:  # type: ignore[no-untyped-def]
    """A tritonclient for the example model served on a real port, and the loaded operator."""
    httpclient = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the dev extra")
    server = ModelServer(local_loader(trained_example.model_dir, EXAMPLE, name="tabular", version="3"))
    asyncio.run(server.load())
    assert server.model is not None
    with live_server(create_app(server, load_on_startup=False)) as url:
        client = httpclient.InferenceServerClient(url.removeprefix("http://"))
        try:
            yield client, server.model.operator
        finally:
            client.close()


def _rows(n: int, seed: int) -> np.ndarray:
    return tabular(n, seed=seed)[["f0", "f1"]].to_numpy(dtype="float32")


def _expected(operator: Any, x: np.ndarray) -> Any:
    import pandas as pd

    return operator.predict(pd.DataFrame(x, columns=["f0", "f1"]))


def test_metadata_describes_a_matrix_a_generic_client_can_build(served: tuple[Any, Any]) -> None:
    client, _ = served
    assert client.is_server_ready() and client.is_model_ready("tabular")
    meta = client.get_model_metadata("tabular")
    assert meta["name"] == "tabular" and meta["versions"] == ["3"]
    [tensor] = meta["inputs"]
    assert (tensor["name"], tensor["datatype"], tensor["shape"]) == ("input", "FP32", [-1, 2])
    assert tensor["parameters"]["columns"] == ["f0", "f1"]
    assert [t["name"] for t in meta["parameters"]["column_inputs"]] == ["f0", "f1"]
    assert [t["name"] for t in meta["outputs"]][:1] == ["prediction"]


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_infer_with_the_matrix_from_metadata(served: tuple[Any, Any], binary: bool) -> None:
    import tritonclient.http as httpclient

    client, operator = served
    tensor = client.get_model_metadata("tabular")["inputs"][0]
    x = _rows(9, seed=21)
    request = httpclient.InferInput(tensor["name"], [len(x), tensor["shape"][1]], tensor["datatype"])
    request.set_data_from_numpy(x, binary_data=binary)
    outputs = None  # tritonclient then asks for every output in binary
    if not binary:
        outputs = [
            httpclient.InferRequestedOutput(n, binary_data=False) for n in ("prediction", "probability_1")
        ]
    result = client.infer("tabular", [request], model_version="3", request_id="g1", outputs=outputs)
    response = result.get_response()
    assert response["model_name"] == "tabular" and response["id"] == "g1"
    sent_binary = [
        o["name"] for o in response["outputs"] if "binary_data_size" in (o.get("parameters") or {})
    ]
    assert sent_binary == ([] if not binary else [o["name"] for o in response["outputs"]])
    want = _expected(operator, x)
    assert result.as_numpy("prediction").tolist() == want["prediction"].tolist()
    np.testing.assert_allclose(result.as_numpy("probability_1"), want["probability_1"], rtol=1e-5, atol=1e-6)
    assert result.as_numpy("probability_1").dtype == np.float32


@pytest.mark.parametrize(
    ("x", "datatype", "needle"),
    [
        (np.zeros((2, 4), dtype="float32"), "FP32", "input 'input': expected 2 features, got 4"),
        (np.array([["a", "b"]], dtype=object), "BYTES", "input 'input': datatype BYTES, expected FP32"),
    ],
    ids=["width", "datatype"],
)
def test_a_wrong_request_says_what_was_expected_in_one_line(
    served: tuple[Any, Any], x: np.ndarray, datatype: str, needle: str
) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client, _ = served
    request = httpclient.InferInput("input", list(x.shape), datatype)
    request.set_data_from_numpy(x, binary_data=True)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("tabular", [request])
    assert caught.value.message() == needle
    assert caught.value.status() == "400"


def test_int64_matrix_is_taken_for_an_fp32_model(served: tuple[Any, Any]) -> None:
    import tritonclient.http as httpclient

    client, operator = served
    x = np.array([[0, 0], [6, 6], [-6, 6]], dtype="int64")
    request = httpclient.InferInput("input", list(x.shape), "INT64")
    request.set_data_from_numpy(x, binary_data=True)
    result = client.infer("tabular", [request])
    assert (
        result.as_numpy("prediction").tolist()
        == _expected(operator, x.astype("float32"))["prediction"].tolist()
    )


# -- the binary tensor extension, piece by piece ---------------------------------------------------


def _request(*inputs: dict[str, Any]) -> InferenceRequest:
    return InferenceRequest.model_validate({"inputs": list(inputs)})


def test_binary_body_splits_at_the_header_length() -> None:
    head = json.dumps({"inputs": []}).encode()
    assert split_body(head + b"\x01\x02", str(len(head))) == (head, b"\x01\x02")
    assert split_body(b"{}", None) == (b"{}", b"")
    for bad in ("-1", "99", "x"):
        with pytest.raises(BadRequest, match="Inference-Header-Content-Length"):
            split_body(b"{}", bad)


def test_binary_inputs_take_their_bytes_in_order() -> None:
    request = _request(
        {"name": "a", "shape": [2], "datatype": "INT32", "parameters": {"binary_data_size": 8}},
        {"name": "b", "shape": [1], "datatype": "FP32", "data": [1.5]},
        {"name": "c", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 7}},
    )
    tail = np.array([3, 4], dtype="<i4").tobytes() + b"\x03\x00\x00\x00abc"
    raw = binary_inputs(request, tail)
    assert tensor_from_bytes("a", "INT32", raw["a"]).tolist() == [3, 4]
    assert tensor_from_bytes("c", "BYTES", raw["c"]).tolist() == ["abc"]
    with pytest.raises(BadRequest, match="add up to 15"):
        binary_inputs(request, tail + b"\x00")
    with pytest.raises(BadRequest, match="goes past"):
        binary_inputs(request, tail[:5])
    with pytest.raises(BadRequest, match="not a whole number of FP64"):
        tensor_from_bytes("d", "FP64", b"\x00" * 7)
    with pytest.raises(BadRequest, match="cut"):
        tensor_from_bytes("e", "BYTES", b"\x09\x00\x00\x00ab")


# -- decoding against what a model declares ------------------------------------------------------


def _decode(declared: list[dict[str, Any]], *inputs: dict[str, Any]) -> Any:
    from runtime_agent.v2 import Declared, decode

    return decode(_request(*inputs), Declared.of(declared))


def test_declared_columns_name_a_matrix_and_are_required() -> None:
    columns = [
        {"name": "a", "datatype": "FP32", "shape": [-1]},
        {"name": "b", "datatype": "FP32", "shape": [-1]},
    ]
    rows = _decode(columns, {"name": "m", "shape": [2, 2], "datatype": "FP64", "data": [1, 2, 3, 4]})
    assert rows.names == ("a", "b") and rows.n == 2 and rows.matrix.tolist() == [[1, 2], [3, 4]]
    extra = _decode(
        columns,
        *({"name": n, "shape": [1], "datatype": "INT64", "data": [1]} for n in ("b", "a", "id")),
    )
    assert extra.names == ("b", "a", "id")  # extra columns pass through to the model
    with pytest.raises(BadRequest, match=r"^expected 2 features, got 1 \(missing: b\)$"):
        _decode(columns, {"name": "a", "shape": [1], "datatype": "FP32", "data": [1]})


def test_what_a_model_leaves_unsaid_is_not_checked() -> None:
    untyped = [{"name": "a", "shape": [-1]}, {"name": "b", "shape": [-1]}]
    rows = _decode(untyped, *({"name": n, "shape": [1], "datatype": "BYTES", "data": ["x"]} for n in "ab"))
    assert rows.names == ("a", "b")
    own_tensor = [{"name": "image", "datatype": "FP32", "shape": [-1, 4]}]  # not column-shaped
    rows = _decode(own_tensor, {"name": "image", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]})
    assert rows.names == ("x0", "x1", "x2")
    optional = [
        {"name": "a", "datatype": "FP32", "shape": [-1]},
        {"name": "b", "shape": [-1], "optional": True},
    ]
    assert _decode(optional, {"name": "a", "shape": [1], "datatype": "FP32", "data": [1]}).names == ("a",)
