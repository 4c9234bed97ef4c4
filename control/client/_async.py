"""`AsyncControlClient`: every call the CLI, TUI and runtime agent make to control, over httpx.

Imports only `control.schemas` and `control.errors`: no SQLAlchemy, no FastAPI.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from control.client._artifacts import ArtifactsCalls
from control.client._attempts import AttemptsCalls
from control.client._exam_runs import ExamRunsCalls
from control.client._governance import GovernanceCalls
from control.client._schedules import ScheduleCalls
from control.client._traffic import TrafficCalls
from control.client._trials import TrialsCalls
from control.client._users import UsersCalls
from control.errors import ControlAPIError, ControlUnreachable
from control.schemas import (
    FinishResult,
    Heartbeat,
    LogChunk,
    MetricPoint,
    MetricReport,
    ModelVersionAssigned,
    ModelVersionReport,
    NodeRelationIn,
    NodeRelationOut,
    RunOut,
    RunPage,
    RunSort,
    RunSpecView,
    ServeSpec,
    ServiceOut,
    StartResult,
    StateReport,
    TaskEvent,
    TaskSpec,
)

T = TypeVar("T")

LAMP = "/lamp/atom/service/operator"
API = "/api/v1"

#: resource kinds under /api/v1/spaces/{space}/..., and the body field that names each
KINDS: dict[str, str] = {
    "connections": "connectName",
    "sources": "sourceName",
    "operators": "operatorName",
    "models": "modelName",
    "service-infos": "siName",
    "experiments": "experimentName",
    "exams": "examName",
    "nodes": "nodeName",
}


class AsyncControlClient(
    UsersCalls,
    GovernanceCalls,
    TrialsCalls,
    ArtifactsCalls,
    ExamRunsCalls,
    ScheduleCalls,
    AttemptsCalls,
    TrafficCalls,
):
    """Talks to one control server.

    Args:
        base_url: e.g. `http://127.0.0.1:8470`.
        token: a user token, or a run token for the agent's calls.
        transport: an httpx transport (tests pass `httpx.ASGITransport(app=...)`).
        timeout: seconds per request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=headers, transport=transport, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    async def request(
        self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        """Send one request; return the decoded JSON body or raise `ControlAPIError`.

        A 422's `errors` become `ControlAPIError.fields` (wire field name -> message).
        """
        if isinstance(json, BaseModel):
            json = json.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if params:
            params = {k: v for k, v in params.items() if v is not None}
        try:
            resp = await self._http.request(method, path, json=json, params=params)
        except httpx.TransportError as exc:
            raise ControlUnreachable(self.base_url, type(exc).__name__) from exc
        if resp.status_code >= 400:
            raise _api_error(resp, path)
        if not resp.content:
            return None
        return resp.json()

    async def _get(self, path: str, model: type[T] | Any, **params: Any) -> T:
        return TypeAdapter(model).validate_python(await self.request("GET", path, params=params))

    async def _post(self, path: str, model: type[T] | Any, body: Any = None) -> T:
        return TypeAdapter(model).validate_python(await self.request("POST", path, json=body))

    # -- health and resources ---------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", "/healthz")
        return result

    async def list_spaces(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.request("GET", f"{API}/spaces")
        return result

    async def ensure_space(self, space: str) -> dict[str, Any]:
        """Create the space if it does not exist; return it."""
        result: dict[str, Any] = await self.request("PUT", f"{API}/spaces/{space}", json={"spaceName": space})
        return result

    async def list(self, space: str, kind: str, **params: Any) -> list[dict[str, Any]]:
        """List one kind of resource (see `KINDS`) in a space."""
        result: list[dict[str, Any]] = await self.request(
            "GET", f"{API}/spaces/{space}/{kind}", params=params
        )
        return result

    async def get(self, space: str, kind: str, name: str | int) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", f"{API}/spaces/{space}/{kind}/{name}")
        return result

    async def create(self, space: str, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", f"{API}/spaces/{space}/{kind}", json=body)
        return result

    async def put(self, space: str, kind: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace `name` (idempotent; what `atom apply` uses)."""
        result: dict[str, Any] = await self.request("PUT", f"{API}/spaces/{space}/{kind}/{name}", json=body)
        return result

    async def patch(self, space: str, kind: str, name: str | int, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", f"{API}/spaces/{space}/{kind}/{name}", json=body)
        return result

    async def delete(self, space: str, kind: str, name: str | int) -> None:
        await self.request("DELETE", f"{API}/spaces/{space}/{kind}/{name}")

    async def test_connection(self, space: str, name: str) -> dict[str, Any]:
        """Ask control to open the connection: `{"ok": bool, "msg": str}`."""
        result: dict[str, Any] = await self.request("POST", f"{API}/spaces/{space}/connections/{name}/test")
        return result

    # -- seed paths -------------------------------------------------------------------------

    async def create_node_relation(self, relation: NodeRelationIn) -> NodeRelationOut:
        return await self._post(f"{LAMP}/node/createNodeRelation", NodeRelationOut, relation)

    async def start_node_task(self, event: TaskEvent) -> StartResult:
        return await self._post(f"{LAMP}/taskEvent/startNodeTask", StartResult, event)

    async def running_auto_finish(self, event: TaskEvent) -> FinishResult:
        return await self._post(f"{LAMP}/taskEvent/runningAutoFinish", FinishResult, event)

    async def create_operators(self, payload: dict[str, Any]) -> StartResult:
        return await self._post("/operator/create_operators", StartResult, payload)

    # -- runs -------------------------------------------------------------------------------

    async def list_runs(
        self,
        *,
        space: str | None = None,
        node: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
        q: str | None = None,
        sort: RunSort | str | None = None,
        desc: bool | None = None,
    ) -> RunPage:
        """One page of runs, newest first unless `sort`/`desc` say otherwise.

        Args:
            space: only this space's runs.
            node: only runs of the node with exactly this name.
            state: only runs in this state.
            limit: page size (at most 1000).
            offset: runs to skip.
            q: text filter: whitespace-separated terms, ANDed; a term matches node name, state,
                adapter or operator type (substring), or the run id; `state:`, `node:` (prefix),
                `type:` and `adapter:` terms match one field.
            sort: a `RunSort` key (id, node, operator, adapter, state, attempt, created, started,
                finished, duration, progress); None: id.
            desc: largest first (the server's default: True).

        Returns:
            The page; `total` counts every matching run.
        """
        return await self._get(
            f"{API}/runs",
            RunPage,
            space=space,
            node=node,
            state=state,
            limit=limit,
            offset=offset,
            q=q or None,
            sort=str(sort) if sort is not None else None,
            desc=desc,
        )

    async def get_run(self, run_id: int) -> RunOut:
        return await self._get(f"{API}/runs/{run_id}", RunOut)

    async def run_spec(self, run_id: int) -> RunSpecView:
        """The run's frozen task spec (no passwords: `hasPassword`), with each source's rows read/total."""
        return await self._get(f"{API}/runs/{run_id}/spec", RunSpecView)

    async def stop_run(self, run_id: int, reason: str = "stopped by user") -> RunOut:
        return await self._post(f"{API}/runs/{run_id}/stop", RunOut, {"reason": reason})

    async def run_logs(self, run_id: int, *, offset: int = 0, limit: int = 65536) -> LogChunk:
        return await self._get(f"{API}/runs/{run_id}/logs", LogChunk, offset=offset, limit=limit)

    async def run_metrics(self, run_id: int) -> builtins.list[MetricPoint]:
        return await self._get(f"{API}/runs/{run_id}/metrics", builtins.list[MetricPoint])

    # -- services ---------------------------------------------------------------------------

    async def list_services(self, *, space: str | None = None) -> builtins.list[ServiceOut]:
        return await self._get(f"{API}/services", builtins.list[ServiceOut], space=space)

    async def get_service(self, service_id: int) -> ServiceOut:
        return await self._get(f"{API}/services/{service_id}", ServiceOut)

    async def stop_service(self, service_id: int) -> ServiceOut:
        return await self._post(f"{API}/services/{service_id}/stop", ServiceOut)

    async def render_node(self, space: str, name: str) -> dict[str, Any]:
        """What the Kubernetes adapter would apply for the node's next run (`yaml` and names)."""
        out: dict[str, Any] = await self.request("GET", f"{API}/spaces/{space}/nodes/{name}/render")
        return out

    async def render_service(self, service_id: int) -> dict[str, Any]:
        """What the Kubernetes adapter would apply for a service (`yaml` and names)."""
        out: dict[str, Any] = await self.request("GET", f"{API}/services/{service_id}/render")
        return out

    async def approve_service(self, service_id: int) -> ServiceOut:
        return await self._post(f"{API}/services/{service_id}/approve", ServiceOut)

    # -- the runtime agent's calls (run token) ----------------------------------------------

    async def task_spec(self, run_id: int) -> TaskSpec:
        return await self._get(f"{API}/agent/runs/{run_id}/spec", TaskSpec)

    async def report_state(self, run_id: int, report: StateReport) -> RunOut:
        return await self._post(f"{API}/agent/runs/{run_id}/state", RunOut, report)

    async def heartbeat(self, run_id: int, beat: Heartbeat) -> dict[str, Any]:
        """Returns `{"stop": bool}`: true once a user asked the run to stop."""
        result: dict[str, Any] = await self.request("POST", f"{API}/agent/runs/{run_id}/heartbeat", json=beat)
        return result

    async def report_metrics(self, run_id: int, report: MetricReport) -> None:
        await self.request("POST", f"{API}/agent/runs/{run_id}/metrics", json=report)

    async def register_model_version(self, run_id: int, report: ModelVersionReport) -> ModelVersionAssigned:
        return await self._post(f"{API}/agent/runs/{run_id}/model-version", ModelVersionAssigned, report)

    async def serve_spec(self, service_id: int) -> ServeSpec:
        return await self._get(f"{API}/agent/services/{service_id}/spec", ServeSpec)

    # -- operator code bundles (codeMode BUNDLE) ----------------------------------------------

    async def upload_code(self, path: Path) -> dict[str, Any]:
        """Upload a tar.gz or zip, streamed from disk; returns `{"digest": "sha256:<hex>", "size": N}`.

        Raises:
            ControlAPIError: refused (413 over `ATOM_CODE_MAX_BYTES`, 415 not an archive).
        """
        size = (await asyncio.to_thread(path.stat)).st_size
        url = f"{API}/code"

        async def body() -> AsyncIterator[bytes]:
            f = await asyncio.to_thread(open, path, "rb")
            try:
                while chunk := await asyncio.to_thread(f.read, 1 << 20):
                    yield chunk
            finally:
                f.close()

        headers = {"Content-Length": str(size), "Content-Type": "application/octet-stream"}
        try:
            resp = await self._http.post(url, content=body(), headers=headers)
        except httpx.TransportError as exc:
            raise ControlUnreachable(self.base_url, type(exc).__name__) from exc
        if resp.status_code >= 400:
            raise _api_error(resp, url)
        result: dict[str, Any] = resp.json()
        return result

    async def code_exists(self, digest: str) -> bool:
        """Whether control stores the bundle `digest` (`sha256:<hex>`)."""
        url = f"{API}/code/{digest}"
        try:
            resp = await self._http.head(url)
        except httpx.TransportError as exc:
            raise ControlUnreachable(self.base_url, type(exc).__name__) from exc
        if resp.status_code == 404:
            return False
        if resp.status_code >= 400:
            raise _api_error(resp, url)
        return True

    async def download_code(
        self, digest: str, dest: Path, *, run_id: int | None = None, service_id: int | None = None
    ) -> str:
        """Stream the bundle `digest` into the file `dest`; returns the sha256 digest of what was written.

        Args:
            digest: `sha256:<hex>`.
            dest: the file to write (created or replaced).
            run_id: the agent's run, when the client carries that run's token.
            service_id: the service, when the client carries that service's token.

        Raises:
            ControlAPIError: 404 when control does not store it.
        """
        url = f"{API}/code/{digest}"
        params = {"runId": run_id} if run_id is not None else {}
        if service_id is not None:
            params["serviceId"] = service_id
        hasher = hashlib.sha256()
        try:
            async with self._http.stream("GET", url, params=params) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise _api_error(resp, url)
                out = await asyncio.to_thread(open, dest, "wb")
                try:
                    async for chunk in resp.aiter_raw(1 << 20):
                        hasher.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
                finally:
                    out.close()
        except httpx.TransportError as exc:
            raise ControlUnreachable(self.base_url, type(exc).__name__) from exc
        return f"sha256:{hasher.hexdigest()}"


def _api_error(resp: httpx.Response, path: str) -> ControlAPIError:
    """The `ControlAPIError` for a non-2xx answer (`msg` and 422 `errors` from its JSON body)."""
    fields: dict[str, str] = {}
    try:
        body = resp.json()
        msg = body.get("msg") or resp.text
        fields = _fields(body.get("errors"))
    except (ValueError, AttributeError):
        msg = resp.text or resp.reason_phrase
    return ControlAPIError(str(msg), status_code=resp.status_code, fields=fields, path=path)


def _fields(errors: Any) -> dict[str, str]:
    """`{"field": msg}` from a 422 body's `errors` list (messages of a repeated field joined)."""
    out: dict[str, str] = {}
    if not isinstance(errors, builtins.list):
        return out
    for err in errors:
        if isinstance(err, dict) and err.get("field") is not None:
            name, msg = str(err["field"]), str(err.get("msg", ""))
            out[name] = f"{out[name]}; {msg}" if name in out else msg
    return out
