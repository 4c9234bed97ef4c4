"""Registry, URL parsing, the lazy package surface, and import hygiene."""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Iterator

import pytest

import connectors
from connectors import ConnectionConfig, config_from_url, names, open_connector, register
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


def test_known_names_are_file_and_mysql() -> None:
    assert {"FILE", "MYSQL"} <= set(names())
    assert names() == sorted(names())
    assert list(reg._KNOWN) == sorted(reg._KNOWN)


def test_get_is_case_insensitive() -> None:
    assert reg.get("mysql") is MySQLConnector
    assert reg.get(" File ") is FileConnector


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(UnknownConnector, match="valid values are FILE, MYSQL") as info:
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
