"""What an agent's environment holds: built from the run and a short list, never all of control's."""

from __future__ import annotations

from pathlib import Path

from control import schemas as s
from control.dispatch.agent_env import declared, inherited
from control.dispatch.describe import RunNames, describe_run, needs_ray
from control.settings import Settings

CONTROL_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/root",
    "AWS_SECRET_ACCESS_KEY": "abc",
    "OSS_ACCESS_KEY_ID": "id",
    "MY_SECRET": "x",
    "GITHUB_TOKEN": "t",
    "DATABASE_URL": "mysql://u:p@h/db",
    "ATOM_DB_URL": "sqlite:///x",
    "ATOM_SECRET_KEY": "k",
    "ATOM_API_TOKEN": "t",
    "ATOM_RUN_TOKEN": "someone else's",
    "ATOM_CACHE_DIR": "/cache",
    "RAY_AUTH_MODE": "disabled",
    "RAY_ADDRESS": "10.0.0.1:6379",
    "CUDA_VISIBLE_DEVICES": "0,1",
    "CUDA_HOME": "/usr/local/cuda",
    "NCCL_DEBUG": "INFO",
    "OMP_NUM_THREADS": "2",
    "SHARED_DATASET": "/mnt/data",
}


def test_only_the_basics_and_runtime_variables_pass() -> None:
    env = inherited(CONTROL_ENV)
    for gone in (
        "AWS_SECRET_ACCESS_KEY",
        "OSS_ACCESS_KEY_ID",
        "MY_SECRET",
        "GITHUB_TOKEN",
        "DATABASE_URL",
        "ATOM_DB_URL",
        "ATOM_SECRET_KEY",
        "ATOM_API_TOKEN",
        "ATOM_RUN_TOKEN",
        "RAY_ADDRESS",
        "CUDA_VISIBLE_DEVICES",
        "SHARED_DATASET",
    ):
        assert gone not in env, gone
    for kept in (
        "PATH",
        "HOME",
        "ATOM_CACHE_DIR",
        "RAY_AUTH_MODE",
        "CUDA_HOME",
        "NCCL_DEBUG",
        "OMP_NUM_THREADS",
    ):
        assert env[kept] == CONTROL_ENV[kept]
    assert inherited(CONTROL_ENV, pass_env=["SHARED_DATASET"])["SHARED_DATASET"] == "/mnt/data"


def test_a_node_declares_its_variables() -> None:
    conf = {"env": {"BATCH": 64}, "passEnv": ["SHARED_DATASET", "NOT_SET_ANYWHERE"]}
    assert declared(conf, CONTROL_ENV) == {"BATCH": "64", "SHARED_DATASET": "/mnt/data"}
    assert declared({"passEnv": "SHARED_DATASET, HOME"}, CONTROL_ENV) == {
        "SHARED_DATASET": "/mnt/data",
        "HOME": "/root",
    }


def _spec(**operator: object) -> s.TaskSpec:
    return s.TaskSpec.model_validate(
        {
            "runId": 7,
            "nodeName": "train-tabular",
            "attempt": 2,
            "operator": {
                "operatorName": "o",
                "operatorRuntimeType": "TRAIN",
                "moduleName": "m",
                "executeObject": "C",
                **operator,
            },
            "model": {"modelName": "tabular", "modelId": 1},
            "serviceInfo": {"siName": "big", "siCpu": 2, "siGpu": 1, "siMemory": 4096, "siNodeNum": 2},
            "envs": {"FROM_START": "1", "ATOM_RUN_TOKEN": "forged"},
        }
    )


def test_a_run_description_carries_identity_resources_and_declared_variables(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, env_name="test", area="shanghai")
    spec = _spec(environmentConf={"env": {"BATCH": "64"}, "trainExecutor": "ray"})
    desc = describe_run(
        settings,
        spec,
        token="tok",
        names=RunNames(space="research", exam="nightly", model_version="3"),
        ray_address="127.0.0.1:9999",
        environ=CONTROL_ENV,
    )
    env = desc.env
    assert env["ATOM_RUN_TOKEN"] == "tok"  # startNodeTask envs cannot replace the run token
    assert env["ATOM_RUN_ID"] == "7" and env["ATOM_RUN_ATTEMPT"] == "2"
    assert env["ATOM_NODE_NAME"] == "train-tabular" and env["ATOM_EXAM_NAME"] == "nightly"
    assert env["ATOM_SPACE"] == env["ATOM_POD_NAMESPACE"] == "research"
    assert env["ATOM_MODEL_NAME"] == "tabular" and env["ATOM_MODEL_VERSION"] == "3"
    assert env["ATOM_MODEL_PATH"] == env["ATOM_MODEL_DIR"]
    assert (env["ATOM_RESOURCE_CPU"], env["ATOM_RESOURCE_GPU"], env["ATOM_RESOURCE_MEMORY"]) == (
        "2",
        "1",
        "4096",
    )
    assert env["ATOM_RESOURCE_NODES"] == "2" and env["ATOM_TRAIN_WORKERS"] == "2"
    assert env["ATOM_ENV"] == "test" and env["ATOM_AREA"] == "shanghai"
    assert env["ATOM_HEARTBEAT_INTERVAL"] == "5"  # default 60 s timeout: the agent's own default
    assert env["RAY_ADDRESS"] == "127.0.0.1:9999" and env["ATOM_TRAIN_EXECUTOR"] == "ray"
    assert env["BATCH"] == "64" and env["FROM_START"] == "1"
    assert "ATOM_HOST_NAME" in env and "ATOM_HOST_IP" in env
    assert "AWS_SECRET_ACCESS_KEY" not in env and "ATOM_DB_URL" not in env
    assert desc.resources.total_gpu == 2 and desc.plan is not None and desc.plan.workers == 2
    assert desc.command[-3:] == ["run", "--run-id", "7"]
    assert desc.log_path == tmp_path / "runs" / "7" / "logs" / "agent.log"
    quick = Settings(home=tmp_path, heartbeat_timeout=4)
    env = describe_run(quick, spec, token="tok", names=RunNames(space="research"), environ=CONTROL_ENV).env
    assert abs(float(env["ATOM_HEARTBEAT_INTERVAL"]) - 4 / 3) < 1e-3  # three beats within the timeout


def test_ray_is_needed_only_for_several_workers_or_when_asked(tmp_path: Path) -> None:
    one = s.TaskSpec.model_validate({**_spec().wire(), "serviceInfo": {"siName": "one", "siCpu": 1}})
    assert not needs_ray(one)
    assert needs_ray(_spec())  # siGpu 1 x siNodeNum 2: two GPU workers
    assert needs_ray(
        s.TaskSpec.model_validate(
            {**one.wire(), "operator": {**one.operator.wire(), "environmentConf": {"trainExecutor": "ray"}}}
        )
    )
    assert not needs_ray(_spec(environmentConf={"trainExecutor": "direct"}))
