"""Runs that read and write MariaDB through the real agent: 100k rows, a wrong password, a read-only sink."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from control.client import AsyncControlClient
from control.schemas import TaskEvent
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_SOCKET, MYSQL_USER, mysql_connect
from tests.control.factory import LAMP, SP, ok
from tests.e2e.conftest import LiveControl, run_state, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.mysql]
ROWS = 100_000
ENDED = ("succeeded", "failed", "stopped")


@pytest.fixture
def table_db(mysql_database: str) -> str:
    conn = mysql_connect(mysql_database)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE samples (id BIGINT PRIMARY KEY, f0 DOUBLE, f1 DOUBLE, label INT)")
        rows = [(i, i * 0.5, -i * 0.25, i % 2) for i in range(1, ROWS + 1)]
        for start in range(0, ROWS, 20_000):
            cur.executemany("INSERT INTO samples VALUES (%s, %s, %s, %s)", rows[start : start + 20_000])
    conn.commit()
    conn.close()
    return mysql_database


@pytest.fixture
def readonly_user(table_db: str) -> Iterator[tuple[str, str]]:
    user, password = f"ro_{uuid.uuid4().hex[:8]}", "Ro-pass-123"
    conn = mysql_connect()
    with conn.cursor() as cur:
        for host in ("%", "localhost"):
            cur.execute(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY '{password}'")
            cur.execute(f"GRANT SELECT ON `{table_db}`.* TO '{user}'@'{host}'")
    try:
        yield user, password
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cur.execute(f"DROP USER IF EXISTS '{user}'@'localhost'")
        conn.close()


async def _run_copy(
    live: LiveControl, client: AsyncControlClient, database: str, *, account: str, password: str
) -> Any:
    conn: dict[str, Any] = {
        "connectName": "dw",
        "connectType": "MYSQL",
        "connectAddr": MYSQL_HOST,
        "connectPort": MYSQL_PORT,
        "connectAccount": account,
        "connectPassword": password,
        "connectSpace": database,
    }
    if MYSQL_SOCKET:
        conn["sourceConf"] = {"unix_socket": MYSQL_SOCKET}
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as api:
        await ok(await api.put(SP, json={"spaceName": "default"}))
        await ok(await api.put(f"{SP}/connections/dw", json=conn))
        src = await ok(
            await api.put(
                f"{SP}/sources/samples",
                json={
                    "sourceName": "samples",
                    "connectionName": "dw",
                    "sourceType": "source",
                    "operateExecute": "samples",
                    "paginateReadNum": 20000,
                    "connectReadNum": 5000,
                    "operatorReadNum": 10000,
                    "asyncLoad": True,
                },
            )
        )
        sink = await ok(
            await api.put(
                f"{SP}/sources/copied",
                json={
                    "sourceName": "copied",
                    "connectionName": "dw",
                    "sourceType": "sink",
                    "operateExecute": "copied",
                },
            )
        )
        op = await ok(
            await api.put(
                f"{SP}/operators/copy",
                json={
                    "operatorName": "copy",
                    "operatorRuntimeType": "PYTHON_DATA",
                    "moduleName": "tests.e2e.operators",
                    "executeObject": "CopyRows",
                },
            )
        )
        node = await ok(
            await api.put(
                f"{SP}/nodes/copy-rows", json={"nodeName": "copy-rows", "operatorRuntimeType": "PYTHON_DATA"}
            )
        )
        await ok(
            await api.post(
                f"{LAMP}/node/createNodeRelation",
                json={"nodeId": node["id"], "operatorId": op["id"], "dataSourceIds": [src["id"], sink["id"]]},
            )
        )
        await ok(await api.patch(f"{SP}/nodes/copy-rows", json={"nodeStatus": "EDIT_FINISH"}))
    run_id = (await client.start_node_task(TaskEvent(task_id=node["id"]))).run_ids[0]
    return await wait_for(lambda: run_state(client, run_id, ENDED), timeout=180, what="the copy run")


def _count(database: str, table: str) -> int | None:
    conn = mysql_connect(database)
    with conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=%s AND table_name=%s",
            (database, table),
        )
        if cur.fetchone()[0] == 0:
            return None
        cur.execute(f"SELECT COUNT(*) FROM `{table}`")
        n = cur.fetchone()[0]
    conn.close()
    return int(n)


async def test_copy_100k_rows_through_the_agent(
    live_control: LiveControl, client: AsyncControlClient, table_db: str
) -> None:
    run = await _run_copy(live_control, client, table_db, account=MYSQL_USER, password=MYSQL_PASSWORD)
    assert run.state.value == "succeeded", run.reason
    assert run.rows_read == ROWS
    assert _count(table_db, "copied") == ROWS
    log = (await client.run_logs(run.id, limit=1 << 20)).text
    assert "OFFSET" not in log


async def test_wrong_password_fails_the_run_with_one_line(
    live_control: LiveControl, client: AsyncControlClient, table_db: str
) -> None:
    run = await _run_copy(live_control, client, table_db, account=MYSQL_USER, password="wrong-password")
    assert run.state.value == "failed"
    assert "refused" in run.reason and "wrong-password" not in run.reason
    assert _count(table_db, "copied") is None


async def test_sink_the_account_cannot_write(
    live_control: LiveControl, client: AsyncControlClient, table_db: str, readonly_user: tuple[str, str]
) -> None:
    user, password = readonly_user
    run = await _run_copy(live_control, client, table_db, account=user, password=password)
    assert run.state.value == "failed"
    assert "copied" in run.reason and password not in run.reason
    assert _count(table_db, "copied") is None  # nothing half-written
