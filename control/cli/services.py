"""Inference-service commands: `atom services` and `atom predict`, over the Open Inference Protocol V2.

A request carries one input per column (MLServer's pandas codec: `content_type: pd`),
so feature names travel with the data; a complete V2 body given with `--json` is sent as it is.

A service that is not public needs a token: `atom predict` sends the token it uses for control
(a user token reaching the service's space), or the service's own key given with `--key`.
`atom services key NAME` makes a new key (shown once; the former stops working within seconds);
`atom services public NAME on|off` opens or closes the service to callers without a token.
`atom services stop NAME` stops a service (by id, or every running one of that name or model);
`atom services stop --all` stops every running service of the space.
A model's versions share its requests: `atom services weight NAME 30` gives a version 30% (the
others keep their proportions), `atom services mirror NAME 10` copies 10% of the requests to it,
`atom services promote NAME` gives it every request and stops the others, `atom services rollback
NAME` stops it and hands its share back to the previous version.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import httpx
from rich.table import Table

from control.cli import render
from control.cli._context import UsageError, missing_space, no_space_note
from control.errors import ControlAPIError, ControlUnreachable

if TYPE_CHECKING:
    import argparse

    import pandas as pd

    from control.cli._context import Context
    from control.client import AsyncControlClient
    from control.schemas import ServiceOut

_DATATYPES = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}


def register(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`atom services [key NAME | public NAME on|off | stop NAME | stop --all]` on the `services` parser."""
    p.add_argument(
        "action",
        nargs="?",
        choices=("key", "public", "stop", "promote", "rollback", "weight", "mirror"),
        help="key: a new key; public: on or off; stop: stop a service (or --all); promote: the "
        "version takes every request; rollback: back to the previous version; weight PERCENT: the "
        "version's share; mirror PERCENT: the share copied to it",
    )
    p.add_argument("name", nargs="?", metavar="SERVICE", help="service id or name")
    p.add_argument("value", nargs="?", help="with public: on or off; with weight and mirror: 0-100")
    p.add_argument(
        "--all", dest="all_services", action="store_true", help="with stop: every live service of the space"
    )
    return p


async def cmd_services(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action == "stop":
        return await cmd_stop_services(ctx, args.name, everything=bool(getattr(args, "all_services", False)))
    if action in TRAFFIC_ACTIONS:
        return await cmd_traffic(ctx, action, args.name, getattr(args, "value", None))
    if action is not None:
        return await cmd_service_access(ctx, action, args.name, getattr(args, "value", None))
    async with ctx.client() as client:
        try:
            services = await list_services(client, ctx.space)
        except ControlAPIError as exc:
            if await missing_space(client, ctx.space, exc):
                ctx.err.print(no_space_note(ctx.space), style="dim")
                return 0
            raise
    if not services:
        ctx.err.print(f"no services in space {ctx.space!r}", style="dim")
        return 0
    ctx.out.print(render.services_table(services))
    if any(s.has_key and not s.public for s in services):
        ctx.err.print(
            "key: set (rotate with `atom services key NAME`); `atom predict` sends your token", style="dim"
        )
    return 0


async def cmd_service_access(ctx: Context, action: str, ref: str | None, value: str | None) -> int:
    """`atom services key NAME` (a new key, printed once) or `atom services public NAME on|off`."""
    if not ref:
        raise UsageError(f"atom services {action}: name the service (id or name)")
    if action == "public" and value not in ("on", "off"):
        raise UsageError("atom services public: say on or off")
    async with ctx.client() as client:
        service = await find_service(client, ctx.space, ref)
        if action == "key":
            body = await client.request("POST", f"/api/v1/services/{service.id}/key")
        else:
            await client.request("PATCH", f"/api/v1/services/{service.id}", json={"public": value == "on"})
    if action == "public":
        state = "answers without a token" if value == "on" else "needs a key or a token"
        ctx.out.print(f"service {service.service_name} {state} (within seconds)")
        return 0
    ctx.err.print(
        f"new key of service {service.service_name}; it is shown only now, and the former key stops "
        "working within seconds. Send it as 'Authorization: Bearer <key>' (or atom predict --key):",
        style="dim",
    )
    ctx.out.file.write(str(body["key"]) + "\n")
    return 0


TRAFFIC_ACTIONS = ("promote", "rollback", "weight", "mirror")


async def cmd_traffic(ctx: Context, action: str, ref: str | None, value: str | None) -> int:
    """`atom services promote|rollback NAME`, `atom services weight|mirror NAME PERCENT`."""
    if not ref:
        raise UsageError(f"atom services {action}: name the service (id or name)")
    percent = None
    if action in ("weight", "mirror"):
        if value is None or not value.rstrip("%").isdigit() or not 0 <= int(value.rstrip("%")) <= 100:
            raise UsageError(f"atom services {action} {ref}: give a percentage from 0 to 100, not {value!r}")
        percent = int(value.rstrip("%"))
    async with ctx.client() as client:
        service = await find_service(client, ctx.space, ref)
        if action == "promote":
            done = await client.promote_service(service.id)
            others = "the model's other versions are stopped"
            ctx.out.print(f"service {done.service_name} takes every request; {others}")
            return 0
        if action == "rollback":
            back = await client.rollback_service(service.id)
            ctx.out.print(f"service {service.service_name} stopped; {back.service_name} takes its requests")
            return 0
        if action == "weight":
            rows = await client.set_service_traffic(service.id, weight=percent)
        else:
            rows = await client.set_service_traffic(service.id, mirror_percent=percent)
    for row in rows:
        mirror = f", {row.mirror_percent}% mirrored to it" if row.mirror_percent else ""
        ctx.out.print(f"{row.service_name}: {row.traffic_weight}%{mirror}")
    return 0


LIVE_STATES = frozenset({"starting", "ready", "waiting_approval"})
"""Service states `atom services stop --all` stops (a stopped or failed one has no process)."""


async def cmd_stop_services(ctx: Context, ref: str | None, *, everything: bool) -> int:
    """`atom services stop NAME` (every live service of that name) or `atom services stop --all`."""
    if everything == bool(ref):
        raise UsageError("atom services stop: name one service (id or name), or give --all")
    async with ctx.client() as client:
        if ref:
            targets = [await find_service(client, ctx.space, ref)]
            if not ref.isdigit():  # every live service of the name: a model's versions too
                targets = [
                    s
                    for s in await list_services(client, ctx.space)
                    if (s.service_name == ref or s.model_name == ref) and s.state.value in LIVE_STATES
                ] or targets
        else:
            targets = [s for s in await list_services(client, ctx.space) if s.state.value in LIVE_STATES]
        if not targets:
            ctx.err.print(f"no running services in space {ctx.space!r}", style="dim")
            return 0
        for service in targets:
            await client.request("POST", f"/api/v1/services/{service.id}/stop")
            ctx.out.print(f"service {service.service_name} (id {service.id}) stopped")
    return 0


async def list_services(client: AsyncControlClient, space: str) -> list[ServiceOut]:
    # the client's `list` method shadows the builtin in its annotations; mypy then loses the type
    return cast("list[ServiceOut]", await client.list_services(space=space))


async def find_service(client: AsyncControlClient, space: str, ref: str) -> ServiceOut:
    """A service by id or by name (the newest of that name).

    Raises:
        ControlAPIError: no such service.
    """
    if ref.isdigit():
        return await client.get_service(int(ref))
    named = [s for s in await list_services(client, space) if s.service_name == ref or s.model_name == ref]
    if not named:
        raise ControlAPIError(f"no service {ref!r} in space {space!r} (see `atom services`)", status_code=404)
    return max(named, key=lambda s: s.id)


def v2_request(frame: pd.DataFrame) -> dict[str, Any]:
    """One V2 input per column; `parameters.content_type = pd` tells a server to rebuild the frame."""
    inputs = []
    for name in frame.columns:
        col = frame[name]
        dtype = _DATATYPES.get(col.dtype.kind, "BYTES")
        data = [None if isinstance(v, float) and math.isnan(v) else v for v in col.tolist()]
        if dtype == "BYTES":
            data = [None if v is None else str(v) for v in data]
        inputs.append({"name": str(name), "shape": [len(col)], "datatype": dtype, "data": data})
    return {"inputs": inputs, "parameters": {"content_type": "pd"}}


def infer_urls(service: ServiceOut) -> list[str]:
    """Where to POST: `{endpoint}/v2/models/{name}/infer`, by model name first, then service name."""
    endpoint = service.front_endpoint or service.endpoint  # the model's stable endpoint first
    if not endpoint:
        raise ControlAPIError(f"service {service.service_name!r} has no endpoint yet ({service.state})")
    base = endpoint.rstrip("/")
    if "://" not in base:
        base = f"http://{base}"
    if base.endswith("/infer"):
        return [base]
    if "/v2/models/" in base:
        return [f"{base}/infer"]
    names = dict.fromkeys([service.model_name, service.service_name])
    return [f"{base}/v2/models/{name}/infer" for name in names]


async def infer(
    service: ServiceOut,
    body: dict[str, Any],
    *,
    token: str | None = None,
    http_timeout: float = 60.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Send one V2 infer request to a service; return the decoded response.

    Args:
        token: the service's key or a user token, sent as `Authorization: Bearer`.

    Raises:
        ControlUnreachable: nothing answers at the endpoint.
        ControlAPIError: the service answered with an error.
    """
    urls = infer_urls(service)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=http_timeout, transport=transport, headers=headers) as http:
        for i, url in enumerate(urls):
            try:
                resp = await http.post(url, json=body)
            except httpx.TransportError as exc:
                raise ControlUnreachable(url, type(exc).__name__) from exc
            if resp.status_code == 404 and i + 1 < len(urls):
                continue
            if resp.status_code >= 400:
                try:
                    detail = resp.json().get("error") or resp.json().get("msg") or resp.text
                except ValueError:
                    detail = resp.text or resp.reason_phrase
                if resp.status_code in (401, 403):
                    detail = f"{detail} (atom predict sends your token; or pass --key with the service's key)"
                raise ControlAPIError(
                    f"service {service.service_name!r} answered {resp.status_code}: {detail}",
                    status_code=resp.status_code,
                )
            result: dict[str, Any] = resp.json()
            return result
    raise AssertionError("unreachable")  # pragma: no cover


def outputs_table(response: dict[str, Any], rows: int, truth: Sequence[Any] | None = None) -> Table | None:
    """Predictions per row (one column per V2 output), beside the true labels when given.

    Returns None when the outputs are not one value (or vector) per input row.
    """
    outputs = response.get("outputs") or []
    columns: list[tuple[str, list[Any]]] = []
    for out in outputs:
        shape, data = out.get("shape") or [], out.get("data") or []
        if not shape or shape[0] != rows or not rows:
            return None
        width = len(data) // rows
        if width == 1:
            columns.append((str(out.get("name", "output")), list(data)))
        else:
            columns.append(
                (str(out.get("name", "output")), [data[i * width : (i + 1) * width] for i in range(rows)])
            )
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ROW", justify="right")
    for name, _ in columns:
        table.add_column(name.upper(), justify="right")
    if truth is not None:
        table.add_column("TRUE", justify="right")
        table.add_column("")
    right = 0
    for i in range(rows):
        cells = [str(i)] + [_fmt(values[i]) for _, values in columns]
        if truth is not None:
            hit = bool(columns) and _same(columns[0][1][i], truth[i])
            right += hit
            cells += [_fmt(truth[i]), "[green]✓[/]" if hit else "[red]✗[/]"]
        table.add_row(*cells)
    if truth is not None:
        table.caption = f"{right} of {rows} right"
        table.caption_justify = "left"
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _same(predicted: Any, true: Any) -> bool:
    try:
        return float(predicted) == float(true)
    except (TypeError, ValueError):
        return str(predicted) == str(true)


def _frame_from_json(text: str) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """`--json`: a full V2 body (has `inputs`), a record, a list of records or a dict of columns."""
    import pandas as pd  # deferred: pandas costs ~0.3 s to import and only predict needs it

    if text.startswith("@"):
        text = Path(text[1:]).expanduser().read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--json is not JSON: {exc.msg} at character {exc.pos}") from None
    if isinstance(data, dict) and "inputs" in data:
        return None, data
    if isinstance(data, dict):
        scalar = all(not isinstance(v, list) for v in data.values())
        return (pd.DataFrame([data]) if scalar else pd.DataFrame(data)), None
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return pd.DataFrame(data), None
    raise UsageError("--json takes a V2 body, a record, a list of records or a mapping of columns")


def _load(args: argparse.Namespace) -> tuple[pd.DataFrame | None, dict[str, Any], list[Any] | None]:
    """The request from --json or --csv: (the frame sent or None, the V2 body, true labels or None)."""
    import pandas as pd  # deferred: see _frame_from_json

    truth: list[Any] | None = None
    if args.json is not None:
        frame, body = _frame_from_json(args.json)
        if body is not None:
            return None, body, None
    else:
        path = Path(args.csv).expanduser()
        if not path.exists():
            raise UsageError(f"--csv {args.csv}: no such file")
        frame = pd.read_csv(path)
    assert frame is not None
    if args.rows:
        frame = frame.head(args.rows)
    if args.label:
        if args.label not in frame.columns:
            have = ", ".join(map(str, frame.columns))
            raise UsageError(f"--label {args.label!r}: no such column (have {have})")
        truth = frame[args.label].tolist()
        frame = frame.drop(columns=[args.label])
    return frame, v2_request(frame), truth


async def cmd_predict(ctx: Context, args: argparse.Namespace) -> int:
    frame, body, truth = _load(args)
    async with ctx.client() as client:
        service = await find_service(client, ctx.space, args.service)
    key = getattr(args, "key", None)
    response = await infer(service, body, token=key or ctx.token, transport=ctx.transport)
    table = outputs_table(response, len(frame), truth) if frame is not None else None
    if table is None or args.raw:
        ctx.out.file.write(json.dumps(response, indent=2) + "\n")
    else:
        ctx.out.print(table)
    return 0
