"""Cacheable nodes: a run of unchanged spec, code, upstream artifacts and data is skipped with its reason
and the earlier run's artifacts; a new code version, a new upstream artifact, a changed file or a new
table row changes the key. Real app over ASGI on SQLite and MariaDB, a recording adapter in place of
agent processes, real MariaDB tables for the MYSQL watermark."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from control import schemas as s
from control.pipeline import cache, watermarks
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER, mysql_connect
from tests.connectors.object_fixtures import BUCKET, S3_KEY_ID, S3_SECRET, moto_server, s3_client  # noqa: F401
from tests.control.factory import LAMP, SP, RecordingAdapter, define_node, ok
from tests.control.test_artifacts import bind_model, train_leaves
from tests.control.test_exams import make_exam, run_of

START = f"{LAMP}/taskEvent/startNodeTask"


@pytest.fixture
def adapter(app: FastAPI) -> RecordingAdapter:
    fake = RecordingAdapter()
    app.state.orchestrator.adapters["local"] = fake
    return fake


def data_files(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("x,label\n1,0\n2,1\n")
    (tmp_path / "test.csv").write_text("x,label\n3,1\n")


async def start(api: httpx.AsyncClient, task_id: int, task_type: str = "NODE") -> list[int]:
    got = await ok(await api.post(START, json={"taskId": task_id, "taskType": task_type}))
    return list(got["runIds"])


async def test_unchanged_node_is_skipped_and_changes_miss(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    data_files(tmp_path)
    node = (await define_node(api, data_dir=str(tmp_path), node="features", deploy="NOT_DEPLOY"))["node"]
    await ok(await api.patch(f"{SP}/nodes/features", json={"cacheable": True}))

    (first,) = await start(api, node["id"])
    assert first in adapter.launches
    await train_leaves(app, api, adapter, first, node["id"], 0.7)
    key = (await run_of(api, first))["cacheKey"]
    assert key and len(key) == 64

    (second,) = await start(api, node["id"])
    run = await run_of(api, second)
    assert second not in adapter.launches
    why = f"cached: same inputs, code and data as run {first} (key {key[:8]})"
    assert (run["state"], run["reason"], run["cacheKey"]) == ("skipped", why, key)
    assert run["history"][-1]["reason"] == why
    copied = {a["name"]: a for a in await ok(await api.get(f"/api/v1/runs/{second}/artifacts"))}
    assert set(copied) == {"model", "metrics", "sink:predictions"}
    assert {a["reusedFrom"] for a in copied.values()} == {first}
    original = {a["name"]: a for a in await ok(await api.get(f"/api/v1/runs/{first}/artifacts"))}
    assert copied["model"]["value"] == original["model"]["value"]

    # a new code version: the key changes, the run is dispatched
    await ok(await api.patch(f"{SP}/operators/tabular", json={"codeVersion": "v2"}))
    (third,) = await start(api, node["id"])
    assert third in adapter.launches
    await train_leaves(app, api, adapter, third, node["id"], 0.7)
    assert (await run_of(api, third))["cacheKey"] not in (None, key)

    # the FILE source changed (size and mtime): dispatched again, then cached from that run
    (tmp_path / "train.csv").write_text("x,label\n1,0\n2,1\n4,0\n")
    (fourth,) = await start(api, node["id"])
    assert fourth in adapter.launches
    await train_leaves(app, api, adapter, fourth, node["id"], 0.7)
    (fifth,) = await start(api, node["id"])
    assert (await run_of(api, fifth))["reason"].startswith(
        f"cached: same inputs, code and data as run {fourth} "
    )

    # the same size but a new mtime also counts
    stat = (tmp_path / "train.csv").stat()
    os.utime(tmp_path / "train.csv", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    (sixth,) = await start(api, node["id"])
    assert sixth in adapter.launches


async def test_unreadable_watermark_means_no_cache(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    data_files(tmp_path)
    node = (await define_node(api, data_dir=str(tmp_path), node="features", deploy="NOT_DEPLOY"))["node"]
    await ok(await api.patch(f"{SP}/nodes/features", json={"cacheable": True}))
    (first,) = await start(api, node["id"])
    await train_leaves(app, api, adapter, first, node["id"], 0.7)
    (tmp_path / "test.csv").unlink()
    (second,) = await start(api, node["id"])
    assert second in adapter.launches
    run = await run_of(api, second)
    assert run["cacheKey"] is None
    reasons = [t["reason"] for t in run["history"]]
    assert "not served from cache: source 'test': test.csv does not exist" in reasons


async def test_upstream_artifact_is_part_of_the_key(
    app: FastAPI, api: httpx.AsyncClient, adapter: RecordingAdapter, tmp_path: Path
) -> None:
    data_files(tmp_path)
    ids = await make_exam(api, tmp_path, {"train": "evaluate", "evaluate": None})
    await bind_model(api, ids, "train", "evaluate")
    await ok(
        await api.patch(f"{SP}/nodes/evaluate", json={"inputs": {"model": "train.model"}, "cacheable": True})
    )
    await ok(await api.patch(f"{SP}/nodes/train", json={"cacheable": True}))

    async def exam_run() -> tuple[dict[str, Any], dict[str, Any]]:
        train, evaluate = await start(api, ids["exam"], "EXAM")
        if train in adapter.launches:
            await train_leaves(app, api, adapter, train, ids["train"], 0.7)
        else:
            await app.state.orchestrator.exams.advance()
        if evaluate in adapter.launches:
            await train_leaves(app, api, adapter, evaluate, ids["evaluate"], 0.6)
        return await run_of(api, train), await run_of(api, evaluate)

    train1, eval1 = await exam_run()
    assert (train1["state"], eval1["state"]) == ("succeeded", "succeeded")
    train2, eval2 = await exam_run()  # nothing changed: both served from cache
    assert train2["state"] == "skipped" and eval2["state"] == "skipped", (train2, eval2)
    assert eval2["reason"].startswith(f"cached: same inputs, code and data as run {eval1['id']} ")

    (tmp_path / "train.csv").write_text("x,label\n9,9\n")  # train retrains: a new model version
    train3, eval3 = await exam_run()
    assert train3["state"] == "succeeded" and eval3["state"] == "succeeded"
    assert eval3["cacheKey"] != eval1["cacheKey"]
    spec3 = await ok(await api.get(f"/api/v1/runs/{eval3['id']}/spec"))
    assert spec3["inputs"]["model"]["runId"] == train3["id"]


def key_for(source: s.SourceSpec, marks: dict[str, Any]) -> str:
    spec = s.TaskSpec(
        run_id=1,
        node_name="n",
        operator=s.OperatorSpec(
            operator_name="o",
            operator_runtime_type=s.OperatorRuntimeType.TRAIN,
            module_name="m",
            execute_object="C",
        ),
        sources=[source],
    )
    return cache.cache_key(spec, marks)


@pytest.mark.mysql
async def test_new_table_row_changes_the_watermark(mysql_database: str) -> None:
    conn = mysql_connect(mysql_database)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE sales (id INT PRIMARY KEY, amount DOUBLE)")
        cur.execute("INSERT INTO sales VALUES (1, 2.5), (2, 3.5)")
    conn.commit()
    source = s.SourceSpec(
        source_name="sales",
        source_type=s.SourceRole.SOURCE,
        operate_execute="sales",
        connection=s.ConnectionSpec(
            connect_name="db",
            connect_type=s.ConnectType.MYSQL,
            connect_addr=MYSQL_HOST,
            connect_port=MYSQL_PORT,
            connect_account=MYSQL_USER,
            connect_password=MYSQL_PASSWORD,
            connect_space=mysql_database,
        ),
    )
    query = source.model_copy(update={"operate_execute": "SELECT id, amount FROM sales WHERE amount > 3"})
    before = await watermarks.read_all([source], limit_s=10)
    query_before = await watermarks.read_all([query], limit_s=10)
    assert before["sales"]["rows"] == 2 and before["sales"]["maxKey"] == "2"
    assert before == await watermarks.read_all([source], limit_s=10)  # stable while nothing changes
    with conn.cursor() as cur:
        cur.execute("INSERT INTO sales VALUES (3, 9.0)")
    conn.commit()
    conn.close()
    after = await watermarks.read_all([source], limit_s=10)
    assert after["sales"]["rows"] == 3 and after["sales"]["maxKey"] == "3"
    assert key_for(source, before) != key_for(source, after)
    assert (await watermarks.read_all([query], limit_s=10))["sales"]["rows"] == query_before["sales"][
        "rows"
    ] + 1

    missing = source.model_copy(update={"operate_execute": "no_such_table"})
    with pytest.raises(watermarks.NoWatermark, match="source 'sales': table no_such_table does not exist"):
        await watermarks.read_all([missing], limit_s=10)


async def test_object_etag_watermark(moto_server: str, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    client = s3_client(moto_server)
    prefix = f"wm-{tmp_path.name}/"
    client.put_object(Bucket=BUCKET, Key=f"{prefix}a.csv", Body=b"x\n1\n")
    client.put_object(Bucket=BUCKET, Key=f"{prefix}b.csv", Body=b"x\n2\n")
    connection = s.ConnectionSpec(
        connect_name="s3",
        connect_type=s.ConnectType.S3,
        connect_addr=moto_server,
        connect_account=S3_KEY_ID,
        connect_password=S3_SECRET,
        connect_space=BUCKET,
        source_conf={"cache_dir": str(tmp_path / "cache")},
    )
    whole = s.SourceSpec(
        source_name="lake", source_type=s.SourceRole.SOURCE, operate_execute=prefix, connection=connection
    )
    one = whole.model_copy(update={"operate_execute": f"{prefix}a.csv"})
    before, single = (
        await watermarks.read_all([whole], limit_s=10),
        await watermarks.read_all([one], limit_s=10),
    )
    assert before["lake"]["objects"] == 2 and single["lake"]["objects"] == 1
    client.put_object(Bucket=BUCKET, Key=f"{prefix}b.csv", Body=b"x\n3\n")  # same size, new ETag
    after = await watermarks.read_all([whole], limit_s=10)
    assert after["lake"]["digest"] != before["lake"]["digest"]
    assert await watermarks.read_all([one], limit_s=10) == single  # a.csv did not change
    missing = whole.model_copy(update={"operate_execute": f"{prefix}none.csv"})
    with pytest.raises(watermarks.NoWatermark, match="source 'lake': "):
        await watermarks.read_all([missing], limit_s=10)
