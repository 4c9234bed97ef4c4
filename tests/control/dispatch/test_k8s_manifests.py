"""The Kubernetes manifests as pure functions: names, labels, the pod's environment, placement from
environmentConf, and every manifest validated offline against the official schema
(kubernetes-validate, strict: an unknown field fails) for two Kubernetes versions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from control.dispatch import k8s_manifests as km
from control.dispatch import k8s_placement as placement
from control.dispatch.base import RunDescription
from control.schemas.resources import ResourceRequest

pytestmark = pytest.mark.k8s
SCHEMAS = ("1.33.0", kubernetes_validate.latest_version())
OPTS = km.K8sOptions(control_url="http://control.atom.svc:8470", service_account="atom-agent")


def run(**fields: Any) -> RunDescription:
    base: dict[str, Any] = {
        "kind": "run",
        "ident": 7,
        "name": "train",
        "command": ["python", "-m", "runtime_agent", "run", "--run-id", "7"],
        "args": ("run", "--run-id", "7"),
        "env": {"ATOM_RUN_TOKEN": "t0k3n", "ATOM_CONTROL_URL": "http://127.0.0.1:8470", "PATH": "/bin"},
        "log_path": Path("/tmp/unused.log"),
    }
    return RunDescription(**(base | fields))


def service(**fields: Any) -> RunDescription:
    base: dict[str, Any] = {
        "kind": "service",
        "ident": 5,
        "name": "iris-12",
        "command": ["python", "-m", "runtime_agent", "serve"],
        "args": ("serve", "--service-id", "5", "--host", "127.0.0.1", "--port", "18555"),
        "env": {
            "ATOM_SERVICE_TOKEN": "t0k3n",
            "ATOM_MODEL_NAME": "Iris_Flowers",
            "ATOM_MODEL_VERSION": "v12",
        },
        "log_path": Path("/tmp/unused.log"),
    }
    return RunDescription(**(base | fields))


PLACED = {
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}],
    "volumes": [
        {"name": "cache", "mountPath": "/cache", "hostPath": {"path": "/var/cache/atom"}},
        {"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True, "configMap": {"name": "cfg"}},
    ],
    "timeoutSeconds": 600,
    "terminationGracePeriodSeconds": 30,
}
CASES = {
    "run, no limits": run(resources=ResourceRequest(cpu=0)),
    "run, cpu and memory": run(resources=ResourceRequest(cpu=0.5, memory_mib=512)),
    "run, gpus and placement": run(
        resources=ResourceRequest(cpu=8, gpu=2, memory_mib=65536), environment_conf=PLACED
    ),
    "run, Cube Studio volumes": run(environment_conf={"volumes": "work(pvc):/mnt/work,4G(memory):/dev/shm"}),
    "run, retries, long name": run(name="n" * 63, ident=123456, retries=5),
    "run, its own command": run(args=(), command=["/usr/bin/python3", "-c", "print(1)"]),
    "service, fixed": service(resources=ResourceRequest(cpu=1, memory_mib=1024, nodes=2)),
    "service, autoscaled": service(replicas=(2, 6), environment_conf={"autoscale": "cpu:50%,mem:60%"}),
    "service, gpu, typed": service(
        service_type="Triton", resources=ResourceRequest(cpu=4, gpu=1), environment_conf=PLACED
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_is_valid_for_the_official_schema(case: str) -> None:
    objects = km.objects(CASES[case], OPTS)
    for manifest in objects:
        for version in SCHEMAS:
            kubernetes_validate.validate(manifest, version, strict=True)
    assert len(objects) in (3, 4, 5)


def test_names_follow_dns_and_seed_001() -> None:
    assert km.job_name(run(name="n" * 63, ident=123456)) == "n" * 56 + "-123456"
    assert km.service_name("", "Iris_Flowers", "v12.1") == "serving-iris-flowers-121"
    assert km.service_name("Triton", "iris", "") == "triton-iris-0"
    assert km.service_name("9x", "m", "1").startswith("x-9x")  # a Service name starts with a letter
    assert km.namespace_of("Team_A", "atom-") == "atom-team-a"
    assert km.label_value("exam: nightly/2") == "exam--nightly-2"
    assert km.secret_name("a" * 63) == "a" * 57 + "-token"


def test_the_pod_env_is_the_runs_without_host_paths_or_the_token() -> None:
    desc = run(
        env={
            "PATH": "/venv/bin",
            "HOME": "/home/ctl",
            "VIRTUAL_ENV": "/venv",
            "PYTHONPATH": "/src",
            "SSL_CERT_FILE": "/etc/ssl/x.pem",
            "CUDA_VISIBLE_DEVICES": "0",
            "ATOM_HOME": "/home/ctl/.atom",
            "ATOM_MODEL_DIR": "/home/ctl/.atom/runs/7/model",
            "ATOM_CONTROL_URL": "http://127.0.0.1:8470",
            "ATOM_RUN_TOKEN": "t0k3n",
            "MY_VAR": "kept",
            "RAY_AUTH_MODE": "disabled",
        }
    )
    env = {e["name"]: e for e in km.pod_env(desc, OPTS, "train-7-token")}
    assert (
        env["MY_VAR"] == {"name": "MY_VAR", "value": "kept"} and env["RAY_AUTH_MODE"]["value"] == "disabled"
    )
    assert env["ATOM_MODEL_DIR"]["value"] == "/atom/work/model"
    assert env["ATOM_CONTROL_URL"]["value"] == "http://control.atom.svc:8470"
    assert env["ATOM_RUN_TOKEN"] == {
        "name": "ATOM_RUN_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "train-7-token", "key": "token"}},
    }
    for gone in (
        "PATH",
        "HOME",
        "VIRTUAL_ENV",
        "PYTHONPATH",
        "SSL_CERT_FILE",
        "CUDA_VISIBLE_DEVICES",
        "ATOM_HOME",
    ):
        assert gone not in env, gone
    job = km.run_objects(desc, OPTS).job
    assert "t0k3n" not in json.dumps(job)


def test_resources_are_requests_and_limits() -> None:
    assert km.resources(run(resources=ResourceRequest(cpu=0))) == {}
    both = {"cpu": "1.5", "memory": "3072Mi", "nvidia.com/gpu": "2"}
    assert km.resources(run(resources=ResourceRequest(cpu=1.5, gpu=2, memory_mib=3072))) == {
        "requests": both,
        "limits": both,
    }


def test_a_service_listens_on_the_pod_address_and_has_an_hpa_only_when_scaling() -> None:
    fixed = km.service_objects(service(), OPTS)
    assert fixed.hpa is None and fixed.deployment["metadata"]["name"] == "serving-iris-flowers-12"
    container = fixed.deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve", "--service-id", "5", "--host", "0.0.0.0", "--port", "18555"]
    assert fixed.service["spec"]["ports"][0]["port"] == 18555
    assert fixed.service["spec"]["selector"] == fixed.deployment["spec"]["selector"]["matchLabels"]
    scaled = km.service_objects(service(replicas=(2, 6)), OPTS)
    assert scaled.hpa is not None and scaled.deployment["spec"]["replicas"] == 2
    assert scaled.hpa["spec"]["metrics"][0]["resource"] == {
        "name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": 80},
    }


def test_render_hides_the_token() -> None:
    text = km.render(run(), OPTS, header="a\nb")
    assert text.startswith("# a\n# b\napiVersion: v1\nkind: Namespace")
    assert "t0k3n" not in text and km.TOKEN_PLACEHOLDER in text


@pytest.mark.parametrize(
    ("conf", "names"),
    [
        ({"nodeSelector": ["gpu"]}, "environmentConf.nodeSelector must be a mapping"),
        (
            {"tolerations": [{"key": "a", "colour": "red"}]},
            r"environmentConf.tolerations\[0\] has unknown keys",
        ),
        (
            {"volumes": [{"name": "v", "mountPath": "/v"}]},
            r"environmentConf.volumes\[0\] needs a name, a mountPath",
        ),
        ({"volumes": "data:/mnt"}, "environmentConf.volumes entry 'data:/mnt' is not"),
        ({"volumes": "x(nfs):/mnt"}, "unknown kind 'nfs'"),
        ({"timeoutSeconds": "soon"}, "environmentConf.timeoutSeconds must be a whole number"),
        ({"autoscale": "gpu:50%"}, "environmentConf.autoscale entry 'gpu:50%'"),
    ],
)
def test_a_bad_placement_is_one_line_naming_the_key(conf: dict[str, Any], names: str) -> None:
    desc = (
        service(replicas=(1, 2), environment_conf=conf) if "autoscale" in conf else run(environment_conf=conf)
    )
    with pytest.raises(placement.BadPlacement, match=names) as caught:
        km.objects(desc, OPTS)
    assert "\n" not in str(caught.value)


def test_cube_studio_volume_strings() -> None:
    vols, mounts = placement.volumes(
        {"volumes": "kubeflow-user-workspace(pvc):/mnt, /data/k8s(hostpath):/data"}
    )
    assert vols == [
        {"name": "vol-0", "persistentVolumeClaim": {"claimName": "kubeflow-user-workspace"}},
        {"name": "vol-1", "hostPath": {"path": "/data/k8s"}},
    ]
    assert mounts == [{"name": "vol-0", "mountPath": "/mnt"}, {"name": "vol-1", "mountPath": "/data"}]


def test_labels_name_space_exam_node_run_and_model() -> None:
    desc = replace(run(), env={"ATOM_EXAM_NAME": "nightly", "ATOM_MODEL_NAME": "iris"}, space="research")
    assert km.labels(desc, "train-7") == {
        "app.kubernetes.io/managed-by": "atom",
        "atom.dev/kind": "run",
        "atom.dev/space": "research",
        "atom.dev/run": "7",
        "atom.dev/node": "train",
        "atom.dev/exam": "nightly",
        "atom.dev/model": "iris",
    }
