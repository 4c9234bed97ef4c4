"""Services screen: the space's inference services (model version, replicas, endpoint, traffic split,
state) and, for the selected one, its Open Inference Protocol URLs and a curl line to copy. `a`
approves a TOUCH_DEPLOY service waiting for approval, `x` stops one (after a confirm), `c` copies
the endpoint."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.binding import Binding, BindingType

from tui.format import progress_bar, state_text
from tui.screens.table import Column, TableScreen, clip, dash
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.describe import Section, row_items
from tui.widgets.form import FieldSpec, FormScreen

WAITING = "waiting_approval"

EXAMPLE_BODY = {"inputs": [{"name": "f0", "shape": [1], "datatype": "FP64", "data": [0.5]}]}
"""An infer body to start from (one row, one numeric column; `GET .../v2/models/{name}` lists the
model's real inputs)."""


def base_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base if "://" in base else f"http://{base}"


def endpoint_of(row: dict[str, Any]) -> str | None:
    """Where to call the service: its model's stable endpoint (the front), else its own."""
    return row.get("frontEndpoint") or row.get("endpoint") or None


def oip_urls(row: dict[str, Any]) -> dict[str, str]:
    """The Open Inference Protocol URLs of a service (empty while it has no endpoint)."""
    endpoint = endpoint_of(row)
    if not endpoint:
        return {}
    base = base_url(endpoint)
    model = row["modelName"]
    return {
        "ready": f"{base}/v2/health/ready",
        "metadata": f"{base}/v2/models/{model}",
        "infer": f"{base}/v2/models/{model}/infer",
    }


def curl_example(row: dict[str, Any]) -> str:
    """A curl line that calls the service's infer URL; unless the service is public it sends
    `$ATOM_TOKEN` (the caller's token, or the service's key): never a secret itself."""
    urls = oip_urls(row)
    if not urls:
        return ""
    body = json.dumps(EXAMPLE_BODY, separators=(",", ":"))
    auth = "" if row.get("public") else ' -H "Authorization: Bearer $ATOM_TOKEN"'
    return f"curl -s -X POST {urls['infer']} -H 'Content-Type: application/json'{auth} -d '{body}'"


class ServicesScreen(TableScreen):
    """Inference services of the current space, refreshed live."""

    TITLE_TEXT = "Services"
    NOUN = "service"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve"),
        Binding("x", "stop", "Stop"),
        Binding("c", "copy", "Copy endpoint"),
        Binding("C", "copy_curl", "Copy curl example", show=False, key_display="C"),
        Binding("l", "open_run", "Open the run that made the model", show=False),
        Binding("p", "promote", "Promote"),
        Binding("b", "rollback", "Roll back"),
        Binding("w", "traffic", "Weight / mirror"),
    ]

    def columns(self) -> Sequence[Column]:
        def traffic(r: dict[str, Any]) -> Any:
            return progress_bar((r.get("trafficWeight") or 0) / 100, width=10 if self.wide else 5)

        def endpoint(r: dict[str, Any]) -> Any:
            return dash(clip(endpoint_of(r), 60 if self.wide else 24))

        return [
            Column("id", lambda r: r["id"]),
            Column("name", lambda r: r["serviceName"]),
            Column("model", lambda r: f"{r['modelName']}:{r['modelVersion']}"),
            Column("state", lambda r: state_text(r.get("state"))),
            Column("traffic", traffic),
            Column("endpoint", endpoint),
            Column("replicas", lambda r: r.get("replicas", 0)),
            Column("restarts", lambda r: r.get("restarts", 0)),
            Column("reason", lambda r: dash(clip(r.get("reason"), 40))),
        ]

    DEFAULT_CSS = """
    ServicesScreen #tbl-body.-wide #tbl-main { width: 2fr; }
    ServicesScreen #tbl-body.-wide #tbl-side { width: 1fr; }
    """

    async def fetch(self) -> list[dict[str, Any]] | None:
        services = await self.attempt(lambda c: c.list_services(space=self.space), what="loading services")
        return None if services is None else [svc.wire() for svc in services]

    def describe(self, row: dict[str, Any]) -> list[Section]:
        fields = dict(
            row, state=state_text(row.get("state")), trafficWeight=f"{row.get('trafficWeight', 0)}%"
        )
        fields.pop("apiKey", None)
        first = ["serviceName", "state", "reason", "modelName", "modelVersion", "endpoint"]
        first += ["replicas", "restarts"]
        sections: list[Section] = [("", row_items(fields, first=first))]
        urls = oip_urls(row)
        if urls:
            sections.append(("Open Inference Protocol (V2)", list(urls.items())))
            sections.append(("curl (C copies it)", Text(curl_example(row), overflow="fold")))
        else:
            hint = "approve it (a) to start it" if row.get("state") == WAITING else "it is not serving"
            sections.append(("Open Inference Protocol (V2)", [("endpoint", f"none yet: {hint}")]))
        return sections

    # -- keys -------------------------------------------------------------------------------

    def _selected_or_say(self) -> dict[str, Any] | None:
        row = self.selected()
        if row is None:
            self.notify("no service selected", severity="warning")
        return row

    def action_approve(self) -> None:
        row = self._selected_or_say()
        if row is None:
            return
        if row["state"] != WAITING:
            self.notify(
                f"{row['serviceName']} is {row['state']}: only a service waiting for approval "
                "(deployType TOUCH_DEPLOY) can be approved",
                title="nothing to approve",
                severity="warning",
            )
            return
        self._approve(row["id"], row["serviceName"])

    @work(group="service-action", exit_on_error=False)
    async def _approve(self, service_id: int, name: str) -> None:
        svc = await self.attempt(lambda c: c.approve_service(service_id), what=f"approving {name}")
        if svc is not None:
            # the key the approval made is not shown here: `atom services key` makes one to see
            keyed = " (callers send their token, or a key from `atom services key`)" if svc.api_key else ""
            self.notify(f"{name} approved: now {svc.state.value}{keyed}", title="approved")
            fresh = svc.wire()
            fresh.pop("apiKey", None)
            self._replace(fresh)
        self.refresh_data()

    def action_stop(self) -> None:
        row = self._selected_or_say()
        if row is None:
            return
        if row["state"] in ("stopped", "failed"):
            self.notify(f"{row['serviceName']} is already {row['state']}", severity="warning")
            return
        self._stop(row["id"], row["serviceName"])

    @work(group="service-action", exit_on_error=False)
    async def _stop(self, service_id: int, name: str) -> None:
        question = f"Stop service {name}? It stops answering requests."
        if not await self.app.push_screen_wait(ConfirmScreen(question, yes="Stop")):
            return
        svc = await self.attempt(lambda c: c.stop_service(service_id), what=f"stopping {name}")
        if svc is not None:
            self.notify(f"{name}: {svc.state.value}", title="stopped")
            self._replace(svc.wire())
        self.refresh_data()

    def action_promote(self) -> None:
        row = self._selected_or_say()
        if row is not None:
            self._move(row, "promote")

    def action_rollback(self) -> None:
        row = self._selected_or_say()
        if row is not None:
            self._move(row, "rollback")

    @work(group="service-action", exit_on_error=False)
    async def _move(self, row: dict[str, Any], how: str) -> None:
        name, sid = row["serviceName"], int(row["id"])
        if how == "promote":
            question = f"Promote {name}? It takes every request; the model's other versions are stopped."
            done = "takes every request"
        else:
            question = f"Roll back {name}? It is stopped and the previous version takes its requests."
            done = "rolled back"
        if not await self.app.push_screen_wait(ConfirmScreen(question, yes=how.capitalize())):
            return
        call = (lambda c: c.promote_service(sid)) if how == "promote" else (lambda c: c.rollback_service(sid))
        svc = await self.attempt(call, what=f"{how} {name}")
        if svc is not None:
            self.notify(f"{name}: {done}" + ("" if how == "promote" else f" ({svc.service_name} serves)"))
        self.refresh_data()

    def action_traffic(self) -> None:
        row = self._selected_or_say()
        if row is not None:
            self._traffic(row)

    @work(group="service-action", exit_on_error=False)
    async def _traffic(self, row: dict[str, Any]) -> None:
        sid, name = int(row["id"]), row["serviceName"]
        client = self.api.client  # direct: a 4xx here is an answer for the form
        fields = [
            FieldSpec("trafficWeight", "Weight (%)", "int", help="its share; the rest keep proportions"),
            FieldSpec("mirrorPercent", "Mirrored (%)", "int", help="share copied to this version (0: off)"),
        ]

        async def submit(values: dict[str, Any]) -> Any:
            return await client.set_service_traffic(
                sid, weight=values.get("trafficWeight"), mirror_percent=values.get("mirrorPercent")
            )

        start = {"trafficWeight": row.get("trafficWeight", 0), "mirrorPercent": row.get("mirrorPercent", 0)}
        form = FormScreen(f"Traffic of {name}", fields, submit, values=start, submit_label="Apply")
        if await self.app.push_screen_wait(form) is not None:
            self.notify(f"{name}: traffic changed", title="traffic")
        self.refresh_data()

    def _replace(self, fresh: dict[str, Any]) -> None:
        self.rows = [fresh if r["id"] == fresh["id"] else r for r in self.rows]
        self.render_rows()

    def action_copy(self) -> None:
        row = self._selected_or_say()
        if row is None:
            return
        endpoint = endpoint_of(row)
        if not endpoint:
            self.notify(f"{row['serviceName']} has no endpoint yet ({row['state']})", severity="warning")
            return
        self.app.copy_to_clipboard(base_url(endpoint))
        self.notify(f"copied {base_url(endpoint)}", title="clipboard")

    def action_copy_curl(self) -> None:
        row = self._selected_or_say()
        if row is None:
            return
        line = curl_example(row)
        if not line:
            self.notify(f"{row['serviceName']} has no endpoint yet ({row['state']})", severity="warning")
            return
        self.app.copy_to_clipboard(line)
        self.notify("copied the curl example", title="clipboard")

    def action_open_run(self) -> None:
        row = self._selected_or_say()
        if row is not None and row.get("runtimeId"):
            self.atom.open_run(int(row["runtimeId"]))
        elif row is not None:
            self.notify(f"{row['serviceName']} has no run recorded", severity="warning")
