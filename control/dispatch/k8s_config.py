"""Where the Kubernetes adapter finds its cluster: a kubeconfig, or the pod's service account.

In order: `ATOM_K8S_KUBECONFIG` (with `ATOM_K8S_CONTEXT`), then `KUBECONFIG`, then
`~/.kube/config`, then the in-cluster account (`KUBERNETES_SERVICE_HOST` is set in every pod).
Control counts the KUBERNETES pattern as configured when one of them is there (`configured`);
nothing is loaded until a run or service needs the cluster, and a kubeconfig that does not load
then fails that start with one line naming the file (`load`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from control.errors import DispatchFailed

if TYPE_CHECKING:
    from control.settings import Settings

ENABLE_HINT = (
    "set ATOM_K8S_KUBECONFIG to a kubeconfig file (or KUBECONFIG, or write ~/.kube/config), "
    "or run control in a pod of the cluster"
)


def kubeconfig_path(settings: Settings, environ: Mapping[str, str] | None = None) -> Path | None:
    """The kubeconfig control uses, if any (not checked for being loadable)."""
    environ = os.environ if environ is None else environ
    if settings.k8s_kubeconfig:
        return Path(settings.k8s_kubeconfig).expanduser()
    if environ.get("KUBECONFIG"):
        return Path(environ["KUBECONFIG"].split(os.pathsep)[0]).expanduser()
    home = environ.get("HOME")
    default = Path(home) / ".kube" / "config" if home else None
    return default if default is not None and default.is_file() else None


def configured(settings: Settings, environ: Mapping[str, str] | None = None) -> bool:
    """Whether this control has a way to reach a cluster (it may still fail to load)."""
    environ = os.environ if environ is None else environ
    return kubeconfig_path(settings, environ) is not None or bool(environ.get("KUBERNETES_SERVICE_HOST"))


def where(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    path = kubeconfig_path(settings, environ)
    if path is not None:
        return f"kubeconfig {path}" + (f" (context {settings.k8s_context})" if settings.k8s_context else "")
    return "the in-cluster service account"


REQUEST_TIMEOUT = (5.0, 60.0)
"""(connect, read) seconds of every API call that names none: an API server that stops answering
fails the call instead of hanging the adapter (the official client waits forever by default)."""


def with_timeouts(api_client: Any) -> Any:
    """`api_client` whose calls default to `REQUEST_TIMEOUT` (a watch or a log follow names its own)."""
    call = api_client.call_api

    def call_api(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("_request_timeout") is None:
            kwargs["_request_timeout"] = REQUEST_TIMEOUT
        return call(*args, **kwargs)

    api_client.call_api = call_api
    return api_client


def load(settings: Settings, environ: Mapping[str, str] | None = None) -> Any:
    """A `kubernetes.client.ApiClient` for the configured cluster.

    Raises:
        DispatchFailed: the kubeconfig does not load, or there is none (one line, naming it).
    """
    from kubernetes import client, config  # deferred: control imports the client only to use it

    environ = os.environ if environ is None else environ
    path = kubeconfig_path(settings, environ)
    if path is not None:
        if not path.is_file():
            raise DispatchFailed(f"the kubeconfig {path} does not exist: check ATOM_K8S_KUBECONFIG")
        try:
            return with_timeouts(
                config.new_client_from_config(config_file=str(path), context=settings.k8s_context)
            )
        except Exception as exc:  # ConfigException, YAML errors, a missing context ...
            why = " ".join(str(exc).split())[:300] or type(exc).__name__
            raise DispatchFailed(
                f"the kubeconfig {path} does not load: {why} (check ATOM_K8S_KUBECONFIG / ATOM_K8S_CONTEXT)"
            ) from exc
    if environ.get("KUBERNETES_SERVICE_HOST"):
        cfg = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=cfg)
        except Exception as exc:
            why = " ".join(str(exc).split())[:300]
            raise DispatchFailed(f"the in-cluster service account does not load: {why}") from exc
        return with_timeouts(client.ApiClient(cfg))
    raise DispatchFailed(f"no Kubernetes cluster is configured: {ENABLE_HINT}")
