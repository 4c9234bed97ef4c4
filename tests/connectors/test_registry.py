"""Registry, URL parsing, the lazy package surface, and import hygiene."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest

import connectors
from connectors import ConnectionConfig, config_from_url, names, open_connector, register, split_url
from connectors import registry as reg
from connectors.errors import (
    AtomError,
    ConfigError,
    ConnectorNotInstalled,
    Permanent,
    SourceUnavailable,
    Transient,
    UnknownConnector,
)
from connectors.files import FileConnector
from connectors.mysql import MySQLConnector


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved, loaded = dict(reg._registered), dict(reg._loaded)
    yield
    reg._registered.clear()
    reg._registered.update(saved)
    reg._loaded.clear()
    reg._loaded.update(loaded)


def test_known_names_are_the_five_stores() -> None:
    assert {"ALIYUNOSS", "FILE", "MYSQL", "REDIS", "S3"} <= set(names())
    assert names() == sorted(names())
    assert list(reg._KNOWN) == sorted(reg._KNOWN)


def test_get_is_case_insensitive() -> None:
    assert reg.get("mysql") is MySQLConnector
    assert reg.get(" File ") is FileConnector


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownConnector, match="valid values are ALIYUNOSS, FILE, MYSQL, REDIS, S3") as info:
        reg.get("ftp")
    assert isinstance(info.value, Permanent)


def test_register_class_path_and_clobber(clean_registry: None) -> None:
    class Fake(FileConnector):
        connect_type = "FAKE"

    register("fake", Fake)
    assert "FAKE" in names() and reg.get("Fake") is Fake
    with pytest.raises(ConfigError, match="clobber"):
        register("FAKE", Fake)
    with pytest.raises(ConfigError, match="clobber"):
        register("mysql", Fake)
    register("fake", "connectors.files:FileConnector", clobber=True)
    assert reg.get("FAKE") is FileConnector
    with pytest.raises(ConfigError, match="Connector"):
        register("bad", dict, clobber=True)  # type: ignore[arg-type]
    register("ghost", "no_such_module_atom:Thing")
    with pytest.raises(ConnectorNotInstalled, match="GHOST.*no_such_module_atom"):
        reg.get("ghost")


def test_config_from_url_mysql_with_escaped_password() -> None:
    cfg = config_from_url("mysql+pymysql://bob:p%40ss%3Aw@db.local:3307/sales?connect_timeout=2&charset=utf8")
    assert cfg == ConnectionConfig(
        "MYSQL",
        addr="db.local",
        port=3307,
        account="bob",
        password="p@ss:w",
        space="sales",
        source_conf={"connect_timeout": 2.0, "charset": "utf8"},
    )
    assert "p@ss" not in repr(cfg) and "p@ss" not in cfg.describe()


def test_config_from_url_file_and_errors() -> None:
    assert config_from_url("file:///srv/data").addr == "/srv/data"
    assert config_from_url("file://").addr == ""
    with pytest.raises(UnknownConnector):
        config_from_url("ftp://host/x")
    with pytest.raises(ConfigError, match="scheme"):
        config_from_url("/just/a/path")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "s3://AK:se%2Fcret@bkt/data/x.csv?endpoint=http://127.0.0.1:5000&region=us-east-1",
            ConnectionConfig(
                "S3",
                addr="http://127.0.0.1:5000",
                account="AK",
                password="se/cret",
                space="bkt",
                source_conf={"region": "us-east-1"},
            ),
        ),
        (
            "oss://id:key@models?endpoint=https://oss-cn-hangzhou.aliyuncs.com",
            ConnectionConfig(
                "ALIYUNOSS",
                addr="https://oss-cn-hangzhou.aliyuncs.com",
                account="id",
                password="key",
                space="models",
            ),
        ),
        (
            "redis://:pw@cache:6380/3",
            ConnectionConfig("REDIS", addr="cache", port=6380, password="pw", space="3"),
        ),
        ("rediss://cache/0", ConnectionConfig("REDIS", addr="cache", space="0", source_conf={"ssl": True})),
        (
            "redis+cluster://node1:7000",
            ConnectionConfig("REDIS", addr="node1", port=7000, colony_type="GROUP"),
        ),
        (
            "redis://node1:7000?cluster=true",
            ConnectionConfig("REDIS", addr="node1", port=7000, colony_type="GROUP"),
        ),
        (
            "unix:///run/redis.sock?db=2",
            ConnectionConfig("REDIS", space="2", source_conf={"unix_socket": "/run/redis.sock"}),
        ),
        ("https://data.example.com/sets/", ConnectionConfig("FILE", addr="https://data.example.com/sets/")),
    ],
)
def test_config_from_url_for_every_store(url: str, expected: ConnectionConfig) -> None:
    assert config_from_url(url) == expected
    assert "cret" not in repr(config_from_url(url)) and "cret" not in config_from_url(url).describe()


def test_split_url_names_connection_and_target() -> None:
    config, target = split_url("s3://bkt/data/part-1.parquet?endpoint=http://h:1")
    assert (config.connect_type, config.space, target) == ("S3", "bkt", "data/part-1.parquet")
    config, target = split_url("https://h.example/x.csv?sig=1")
    assert (config.connect_type, config.addr, target) == ("FILE", "", "https://h.example/x.csv?sig=1")
    assert split_url("file:///srv/x.csv")[1] == "/srv/x.csv"
    config, target = split_url("mysql://u@h/db?table=orders&charset=utf8mb4")
    assert (target, config.source_conf) == ("orders", {"charset": "utf8mb4"})
    assert split_url("redis://h/0?match=user:*")[1] == "user:*"
    with pytest.raises(ConfigError, match=r"\?table=NAME"):
        split_url("mysql://u@h/db")


def test_open_connector_from_config_and_url() -> None:
    assert isinstance(open_connector(ConnectionConfig("file")), FileConnector)
    conn = open_connector("mysql://root@127.0.0.1:3306/test")
    assert isinstance(conn, MySQLConnector) and conn.database == "test"


def test_errors_pickle_and_keep_their_retry_meaning() -> None:
    err = SourceUnavailable("MySQL at h:1 is down", retry_after=2.0, code=2003)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is SourceUnavailable and isinstance(back, Transient) and isinstance(back, AtomError)
    assert str(back) == "MySQL at h:1 is down" and back.retry_after == 2.0 and back.context["code"] == 2003


def test_package_exports_are_complete() -> None:
    for name in connectors.__all__:
        assert getattr(connectors, name) is not None
    with pytest.raises(AttributeError):
        connectors.nope  # noqa: B018


def test_import_is_light_and_stays_in_its_layer() -> None:
    code = (
        "import sys, connectors\n"
        "heavy = [m for m in ('pandas', 'pymysql', 'pyarrow', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import connectors.files, connectors.mysql, connectors.sync, connectors.registry\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('control', 'runtime_agent', 'tui', 'ray',"
        " 'textual', 'redis', 'oss2', 'boto3')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
