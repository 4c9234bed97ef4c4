"""Fixtures for anything that talks to Kubernetes in the tests (registered in tests/conftest.py).

- `kube_api`: the stand-in API server (kmock's HTTP server with the store of apiserver.py) on a
  free loopback port, one per test.
- `kubeconfig`: a kubeconfig file whose current context points the official client at it (what
  `ATOM_K8S_KUBECONFIG` takes).
- `kube_client`: a `kubernetes.client.ApiClient` made from that kubeconfig.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.k8s_sim.kubeapi import KubeApi


@pytest.fixture
def kube_api() -> Iterator[KubeApi]:
    from tests.k8s_sim.kubeapi import KubeApi

    with KubeApi() as api:
        yield api


@pytest.fixture
def kubeconfig(kube_api: KubeApi, tmp_path: Path) -> Path:
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kube_client(kubeconfig: Path) -> Iterator[Any]:
    from kubernetes import config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    try:
        yield api_client
    finally:
        api_client.close()
