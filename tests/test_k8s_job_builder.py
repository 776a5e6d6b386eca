"""The Kubernetes backend's pure parts, no cluster: the step Job ``build_job`` makes, its
settings (bad ones are one line naming the variable, exit 2, before anything is created),
how pod and Job states map to a ``StepExit``, and the deploy manifests, validated offline
against current Kubernetes schemas (strict)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes import client

from agentic_orchestration.errors import ConfigError
from agentic_orchestration.orchestration.backends._kubernetes_job import (
    K8sSettings,
    build_job,
    job_manifest,
    job_name,
    label_value,
)
from agentic_orchestration.orchestration.backends._kubernetes_status import (
    job_verdict,
    pod_verdict,
)
from agentic_orchestration.orchestration.backends.base import (
    K8sInfo,
    StepPaths,
    StepSpec,
    StepTiming,
    TaskSpec,
)
from agentic_orchestration.orchestration.backends.launcher import StepExit, result_from_exit

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy" / "k8s"
#: Kubernetes versions the manifests must be valid for: a current release and the newest
#: schema bundled (the test cluster runs 1.20, checked by server-side dry-run elsewhere).
VERSIONS = ("1.33", kubernetes_validate.utils.latest_version())
BASE_ENV = {"AGENTIC_K8S_WORKER_IMAGE": "agentic-orchestration-worker:1",
            "AGENTIC_K8S_RUN_STORE_PVC": "agentic-run-store"}


def spec(step_id: str = "gather", run_id: str = "20260101T000000Z-0a1b2c3d",
         provider: str = "fake_researcher", **agent) -> StepSpec:
    return StepSpec(run_id=run_id, step_id=step_id, step_index=0, workflow_name="wf",
                    task=TaskSpec(description="GATHER", expected_output="facts"),
                    agent_provider={"id": provider, "type": "openai", **agent},
                    paths=StepPaths(run_store="/run/store"))


def manifest(step: StepSpec | None = None, **env: str) -> dict:
    return job_manifest(build_job(step or spec(), K8sSettings.load({**BASE_ENV, **env}),
                                  name="ao-gather-abc123-000000"))


# --- the Job ----------------------------------------------------------------------------


def test_job_runs_the_worker_on_its_spec_with_the_run_store_mounted():
    job = manifest(AGENTIC_K8S_RUN_STORE_MOUNT="/data/store/", AGENTIC_K8S_NAMESPACE="team-a")
    assert job["metadata"]["namespace"] == "team-a"
    pod = job["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "agentic-orchestration-worker:1"
    assert container["args"] == ["--execute-step",
                                 "/data/store/20260101T000000Z-0a1b2c3d/gather-spec.json",
                                 "--run-id", "20260101T000000Z-0a1b2c3d",
                                 "--step-id", "gather"]
    assert container["volumeMounts"] == [{"mountPath": "/data/store", "name": "run-store"}]
    assert pod["volumes"] == [{"name": "run-store", "persistentVolumeClaim":
                               {"claimName": "agentic-run-store"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["AGENTIC_RUN_STORE_PATH"] == "/data/store"


def test_the_coordinator_owns_retries_and_finished_jobs_go_away():
    job = manifest(AGENTIC_K8S_JOB_TTL_SECONDS="120", AGENTIC_STEP_TIMEOUT_SECONDS="300")
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["ttlSecondsAfterFinished"] == 120
    assert job["spec"]["activeDeadlineSeconds"] == 360  # backstop past the step timeout


def test_labels_find_a_run_and_a_step_and_annotations_keep_full_ids():
    long_step = "s" * 100 + "-"
    job = manifest(spec(step_id=long_step, provider="openai/gpt:4"))
    labels = job["metadata"]["labels"]
    assert labels["run_id"] == "20260101T000000Z-0a1b2c3d"
    assert labels["step_id"] == "s" * 63
    assert labels["agent_provider_id"] == "openai_gpt_4"
    assert job["spec"]["template"]["metadata"]["labels"] == labels  # pods carry them too
    assert job["metadata"]["annotations"]["agentic-orchestration/step-id"] == long_step
    assert label_value("--a.b_") == "a.b"


def test_job_names_are_unique_per_attempt_and_fit_pod_names():
    names = {job_name(spec(step_id="Step_With.Odd--Chars" * 5)) for _ in range(20)}
    assert len(names) == 20
    for name in names:
        assert len(name) <= 52 and name.startswith("ao-step-with-odd-chars")
        assert name == name.lower() and "_" not in name and "." not in name


def test_secret_values_never_enter_a_job():
    environ = {**BASE_ENV, "AGENTIC_K8S_ENV_SECRET": "agentic-orchestrator-env",
               "OPENAI_API_KEY": "sk-live-0123456789abcdef", "AGENTIC_LOG_LEVEL": "INFO"}
    step = spec(api_key_env="OPENAI_API_KEY")
    text = json.dumps(job_manifest(build_job(step, K8sSettings.load(environ))))
    assert "sk-live-0123456789abcdef" not in text
    assert '"secretRef": {"name": "agentic-orchestrator-env"}' in text
    assert '"AGENTIC_LOG_LEVEL", "value": "INFO"' in text  # non-secret settings forwarded


def test_embedded_model_url_only_for_local_steps():
    environ = {"AGENTIC_LOCAL_LLM_URL": "http://127.0.0.1:8080/v1"}
    local = manifest(spec(provider="local", type="local"), **environ)
    remote = manifest(**environ)
    [local_c], [remote_c] = (j["spec"]["template"]["spec"]["containers"]
                             for j in (local, remote))
    assert {"name": "AGENTIC_LOCAL_LLM_URL", "value": "http://127.0.0.1:8080/v1"} in \
        local_c["env"]
    assert "AGENTIC_LOCAL_LLM_URL" not in json.dumps(remote_c)


def test_resources_gpu_selector_host_network_and_no_api_token():
    env = {"AGENTIC_K8S_WORKER_RESOURCES": '{"requests": {"cpu": "500m", "memory": "1Gi"},'
                                           ' "limits": {"nvidia.com/gpu": 1}}',
           "AGENTIC_K8S_GPU_PROVIDER_IDS": "big_gpu,other",
           "AGENTIC_K8S_GPU_NODE_SELECTOR": '{"accelerator": "nvidia"}',
           "AGENTIC_K8S_HOST_NETWORK": "1", "AGENTIC_K8S_IMAGE_PULL_POLICY": "never"}
    gpu = manifest(spec(provider="big_gpu"), **env)["spec"]["template"]["spec"]
    cpu = manifest(spec(provider="small"), **env)["spec"]["template"]["spec"]
    assert gpu["nodeSelector"] == {"accelerator": "nvidia"}
    assert "nodeSelector" not in cpu
    assert gpu["containers"][0]["resources"] == {
        "requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    assert gpu["hostNetwork"] is True and gpu["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert gpu["containers"][0]["imagePullPolicy"] == "Never"
    assert gpu["automountServiceAccountToken"] is False
    assert "serviceAccountName" not in gpu
    worker_sa = manifest(AGENTIC_K8S_SERVICE_ACCOUNT="agentic-worker")
    assert worker_sa["spec"]["template"]["spec"]["serviceAccountName"] == "agentic-worker"


def test_workers_run_as_the_coordinators_user():
    pod = manifest()["spec"]["template"]["spec"]
    import os

    assert pod["securityContext"]["runAsUser"] == os.getuid()
    assert pod["securityContext"]["runAsGroup"] == os.getgid()
    container = pod["containers"][0]["securityContext"]
    assert container == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


@pytest.mark.parametrize("version", VERSIONS)
def test_built_job_is_valid_strictly(version):
    env = {"AGENTIC_K8S_WORKER_RESOURCES": '{"limits": {"memory": "2Gi"}}',
           "AGENTIC_K8S_ENV_SECRET": "s", "AGENTIC_K8S_HOST_NETWORK": "1",
           "AGENTIC_K8S_GPU_PROVIDER_IDS": "fake_researcher",
           "AGENTIC_K8S_GPU_NODE_SELECTOR": '{"gpu": "true"}'}
    kubernetes_validate.validate(manifest(**env), version, strict=True)


# --- bad settings -------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "message"), [
    ({"AGENTIC_K8S_WORKER_IMAGE": ""}, "AGENTIC_K8S_WORKER_IMAGE is unset"),
    ({"AGENTIC_K8S_RUN_STORE_PVC": " "}, "AGENTIC_K8S_RUN_STORE_PVC is unset"),
    ({"AGENTIC_K8S_WORKER_IMAGE": "my image"}, "AGENTIC_K8S_WORKER_IMAGE='my image'"),
    ({"AGENTIC_K8S_NAMESPACE": "Team_A"}, "AGENTIC_K8S_NAMESPACE='Team_A': not a Kubernetes"),
    ({"AGENTIC_K8S_RUN_STORE_PVC": "Store!"}, "AGENTIC_K8S_RUN_STORE_PVC='Store!'"),
    ({"AGENTIC_K8S_ENV_SECRET": "-x"}, "AGENTIC_K8S_ENV_SECRET='-x'"),
    ({"AGENTIC_K8S_RUN_STORE_MOUNT": "run/store"}, "AGENTIC_K8S_RUN_STORE_MOUNT='run/store'"),
    ({"AGENTIC_K8S_RUN_STORE_MOUNT": "/"}, "AGENTIC_K8S_RUN_STORE_MOUNT='/'"),
    ({"AGENTIC_K8S_WORKER_RESOURCES": '{"request": {}}'},
     "AGENTIC_K8S_WORKER_RESOURCES: key 'request'"),
    ({"AGENTIC_K8S_WORKER_RESOURCES": '{"limits": {"cpu": "lots"}}'},
     "AGENTIC_K8S_WORKER_RESOURCES: limits.cpu='lots' is not a quantity"),
    ({"AGENTIC_K8S_WORKER_RESOURCES": "[1]"}, "AGENTIC_K8S_WORKER_RESOURCES='[1]': not a JSON"),
    ({"AGENTIC_K8S_GPU_PROVIDER_IDS": "big"}, "AGENTIC_K8S_GPU_NODE_SELECTOR is empty"),
    ({"AGENTIC_K8S_GPU_NODE_SELECTOR": '{"gpu": true}'}, "AGENTIC_K8S_GPU_NODE_SELECTOR:"),
    ({"AGENTIC_K8S_JOB_TTL_SECONDS": "-1"}, "AGENTIC_K8S_JOB_TTL_SECONDS='-1'"),
    ({"AGENTIC_K8S_IMAGE_PULL_POLICY": "Sometimes"}, "AGENTIC_K8S_IMAGE_PULL_POLICY="),
])
def test_bad_settings_are_one_line_naming_the_variable(env, message):
    with pytest.raises(ConfigError) as err:
        K8sSettings.load({**BASE_ENV, **env})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_cli_refuses_a_missing_image_before_planning(tmp_path, fake_config, scripted_llm):
    env = {"AGENTIC_EXECUTION_BACKEND": "kubernetes", "AGENTIC_CONFIG_DIR": str(fake_config),
           "AGENTIC_K8S_RUN_STORE_PVC": "agentic-run-store",
           "AGENTIC_RUN_STORE_PATH": str(tmp_path / "store"),
           "AGENTIC_SESSIONS_PATH": str(tmp_path / "sessions"), "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--dynamic", "a goal"],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: AGENTIC_K8S_WORKER_IMAGE is unset: the kubernetes backend needs it (see the "
        "README's Kubernetes section)"]
    assert scripted_llm.requests == []  # nothing planned
    assert not (tmp_path / "store").exists()  # nothing created


def test_cli_wants_the_coordinators_view_of_the_run_store(tmp_path):
    env = {**BASE_ENV, "AGENTIC_EXECUTION_BACKEND": "kubernetes", "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "main.py"), "--dynamic", "a goal"],
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", **env})
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: AGENTIC_RUN_STORE_PATH is unset: on the kubernetes")
    assert len(proc.stderr.strip().splitlines()) == 1


# --- how a Job ended ----------------------------------------------------------------------

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def pod(*, terminated=None, waiting=None, phase="Running", age=1.0, conditions=None,
        deleting=False, reason=None) -> client.V1Pod:
    state = client.V1ContainerState(
        terminated=client.V1ContainerStateTerminated(**terminated) if terminated else None,
        waiting=client.V1ContainerStateWaiting(**waiting) if waiting else None)
    status = client.V1ContainerStatus(name="worker", image="img:1", image_id="", ready=False,
                                      restart_count=0, state=state)
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name="ao-gather-abc-x1", creation_timestamp=NOW -
                                     timedelta(seconds=age),
                                     deletion_timestamp=NOW if deleting else None),
        spec=client.V1PodSpec(containers=[client.V1Container(name="worker", image="img:1")]),
        status=client.V1PodStatus(phase=phase, container_statuses=[status],
                                  conditions=conditions, reason=reason,
                                  message="low on memory" if reason else None))


@pytest.mark.parametrize(("terminated", "expected"), [
    ({"exit_code": 0, "reason": "Completed"}, StepExit("exited", exit_code=0,
                                                        detail="Completed")),
    ({"exit_code": 1, "reason": "Error"}, StepExit("exited", exit_code=1, detail="Error")),
    ({"exit_code": 130, "reason": "Error"}, StepExit("exited", exit_code=130, detail="Error")),
    ({"exit_code": 137, "reason": "Error"},
     StepExit("signalled", exit_code=137, signal="SIGKILL", detail="container Error")),
    ({"exit_code": 143, "reason": "Error"},
     StepExit("signalled", exit_code=143, signal="SIGTERM", detail="container Error")),
    ({"exit_code": 137, "reason": "OOMKilled"},
     StepExit("signalled", exit_code=137, signal="SIGKILL",
              detail="OOMKilled: the container passed its memory limit")),
])
def test_container_exit(terminated, expected):
    assert pod_verdict(pod(terminated=terminated, phase="Failed"), now=NOW) == expected


def test_image_never_pulled_is_permanent_at_once():
    verdict = pod_verdict(pod(waiting={"reason": "ErrImageNeverPull", "message": "not here"},
                              phase="Pending"), now=NOW)
    assert verdict.reason == "lost" and verdict.permanent
    assert verdict.detail.startswith("ErrImageNeverPull: image not present on the node")
    assert "img:1" in verdict.detail


def test_missing_secret_is_permanent_at_once():
    verdict = pod_verdict(pod(waiting={"reason": "CreateContainerConfigError",
                                       "message": 'secret "env" not found'},
                              phase="Pending"), now=NOW)
    assert verdict.permanent and 'secret "env" not found' in verdict.detail


def test_pull_backoff_and_unschedulable_wait_for_the_schedule_timeout():
    backoff = {"reason": "ImagePullBackOff", "message": "back-off"}
    assert pod_verdict(pod(waiting=backoff, phase="Pending", age=10), now=NOW,
                       schedule_timeout=30) is None
    late = pod_verdict(pod(waiting=backoff, phase="Pending", age=31), now=NOW,
                       schedule_timeout=30)
    assert late.permanent and late.detail.startswith("ImagePullBackOff: image img:1 not pulled")
    unschedulable = [client.V1PodCondition(type="PodScheduled", status="False",
                                           reason="Unschedulable",
                                           message="0/1 nodes are available: 1 node(s) "
                                                   "didn't match node selector.")]
    young = pod(phase="Pending", age=5, conditions=unschedulable)
    young.status.container_statuses = None
    assert pod_verdict(young, now=NOW, schedule_timeout=30) is None
    old = pod(phase="Pending", age=45, conditions=unschedulable)
    old.status.container_statuses = None
    verdict = pod_verdict(old, now=NOW, schedule_timeout=30)
    assert verdict.permanent and verdict.detail == (
        "unschedulable for 45s: 0/1 nodes are available: 1 node(s) didn't match node selector.")


def test_evicted_or_deleted_pods_are_lost_and_retryable():
    evicted = pod_verdict(pod(phase="Failed", reason="Evicted"), now=NOW)
    assert evicted == StepExit("lost", detail="pod ao-gather-abc-x1 Evicted: low on memory")
    assert not evicted.permanent
    deleted = pod_verdict(pod(deleting=True), now=NOW)
    assert deleted == StepExit("lost", detail="pod ao-gather-abc-x1 was deleted mid-step")
    assert pod_verdict(pod(), now=NOW) is None  # running


def job(condition: str, reason: str = "", deadline: int | None = 60) -> client.V1Job:
    return client.V1Job(
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(),
                              active_deadline_seconds=deadline),
        status=client.V1JobStatus(conditions=[client.V1JobCondition(
            type=condition, status="True", reason=reason, message="m")]))


def test_job_conditions():
    assert job_verdict(job("Complete")) == StepExit("exited", exit_code=0)
    assert job_verdict(job("Failed", "DeadlineExceeded")) == StepExit(
        "timeout", detail="Job deadline exceeded (activeDeadlineSeconds 60)")
    assert job_verdict(job("Failed", "BackoffLimitExceeded")) == StepExit(
        "lost", detail="Job failed: BackoffLimitExceeded: m")
    assert job_verdict(client.V1Job(status=client.V1JobStatus())) is None


def test_result_keeps_where_it_ran_and_permanent_failures_are_final():
    timing = StepTiming(started_at="a", finished_at="b")
    where = K8sInfo(job_name="ao-x", pod_name="ao-x-1", node_name="n1", exit_code=0)
    lost = result_from_exit(spec(), StepExit("lost", detail="ErrImageNeverPull: x",
                                             permanent=True, k8s=where), None, timing=timing)
    assert not lost.recoverable and lost.recovery_hint is None
    assert lost.k8s == where and lost.error == "worker lost: ErrImageNeverPull: x"
    retry = result_from_exit(spec(), StepExit("lost", detail="pod deleted"), None,
                             timing=timing)
    assert retry.recoverable and retry.recovery_hint == "worker_retry"


# --- manifests ----------------------------------------------------------------------------


def manifest_docs() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def test_deploy_folder_has_every_piece():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for _, doc in manifest_docs()}
    assert {("Namespace", "agentic-orchestration"), ("ServiceAccount", "agentic-coordinator"),
            ("Role", "agentic-coordinator"), ("RoleBinding", "agentic-coordinator"),
            ("PersistentVolumeClaim", "agentic-run-store"),
            ("Secret", "agentic-orchestrator-env"), ("Deployment", "agentic-coordinator"),
            ("Service", "agentic-local-model"), ("Job", "ao-gather-3f2a1c-example")} <= kinds
    assert (DEPLOY / "LOGGING.md").is_file()


@pytest.mark.parametrize("version", VERSIONS)
def test_manifests_are_valid_strictly(version):
    for name, doc in manifest_docs():
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name} {doc['kind']}: {exc}")


def test_role_grants_exactly_what_the_launcher_calls():
    [role] = [d for _, d in manifest_docs() if d["kind"] == "Role"]
    granted = {(group, res, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for res in rule["resources"] for verb in rule["verbs"]}
    assert granted == {("batch", "jobs", v) for v in ("create", "get", "list", "watch",
                                                      "delete")} | {
        ("", "pods", "list"), ("", "pods", "watch"), ("", "pods", "delete"),
        ("", "pods/log", "get")}


def test_worker_job_example_is_what_build_job_makes():
    [example] = [d for _, d in manifest_docs() if d["kind"] == "Job"]
    step = StepSpec(run_id="20260101T000000Z-0a1b2c3d", step_id="gather", step_index=0,
                    workflow_name="research_report", topic="tea",
                    task=TaskSpec(description="Gather facts about tea", expected_output="facts"),
                    agent_provider={"id": "openai_gpt4o_mini", "type": "openai"},
                    paths=StepPaths(run_store="/run/store"))
    config = K8sSettings(
        image="agentic-orchestration-worker:latest", run_store_pvc="agentic-run-store",
        env_secret="agentic-orchestrator-env",
        resources={"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "2Gi"}},
        forwarded_env={"AGENTIC_LOG_FORMAT": "json", "AGENTIC_LOG_LEVEL": "INFO"},
        run_as_user=10001, run_as_group=10001)
    assert example == job_manifest(build_job(step, config, name="ao-gather-3f2a1c-example"))
