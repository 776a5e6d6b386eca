"""The local test cluster itself: a real Node, real containers, RBAC on, a hostPath PV.

Everything goes through the official ``kubernetes`` client against the kubeconfig that
``scripts/k8s/cluster.sh`` writes.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from k8s_support import CLUSTER_SH, ClusterUnavailable, K8sCluster, start_cluster

pytestmark = [pytest.mark.kubernetes,
              # Setting the session fixture up may build the cluster (minutes, cold cache).
              pytest.mark.timeout(1900)]


def _tiny_job(cluster: K8sCluster, name: str, args: list[str], **pod_extra: Any) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "hostNetwork": True,
                    "containers": [{"name": "tiny", "image": cluster.tiny_image,
                                    "imagePullPolicy": "Never", "args": args}],
                    **pod_extra,
                },
            },
        },
    }


def _wait_job_finished(cluster: K8sCluster, namespace: str, name: str,
                       timeout: int = 120) -> Any:
    """The Job once its Complete or Failed condition is True, seen through a watch."""
    from kubernetes import watch

    batch = cluster.batch()
    w = watch.Watch()
    for event in w.stream(batch.list_namespaced_job, namespace,
                          field_selector=f"metadata.name={name}", timeout_seconds=timeout):
        job = event["object"]
        for cond in job.status.conditions or []:
            if cond.type in ("Complete", "Failed") and cond.status == "True":
                w.stop()
                return job
    pods = cluster.core().list_namespaced_pod(namespace, label_selector=f"job-name={name}")
    phases = [(p.metadata.name, p.status.phase, p.status.reason) for p in pods.items]
    pytest.fail(f"Job {namespace}/{name} not finished after {timeout} s; pods: {phases}\n"
                f"kubelet log:\n{cluster.component_log('kubelet', 30)}")


def _job_pod(cluster: K8sCluster, namespace: str, name: str) -> Any:
    pods = cluster.core().list_namespaced_pod(namespace, label_selector=f"job-name={name}")
    assert len(pods.items) == 1, [p.metadata.name for p in pods.items]
    return pods.items[0]


def _condition(job: Any, kind: str) -> Any:
    return next((c for c in job.status.conditions or [] if c.type == kind), None)


def test_node_is_ready_and_runs_the_built_kubelet(k8s_cluster: K8sCluster) -> None:
    node = k8s_cluster.core().read_node(k8s_cluster.node_name)
    ready = _condition(node, "Ready")
    assert ready is not None and ready.status == "True", node.status.conditions
    info = node.status.node_info
    assert info.kubelet_version == "v1.20.2"
    assert info.container_runtime_version.startswith("containerd://")
    # Not cordoned or tainted: pods without tolerations schedule here.
    assert not node.spec.unschedulable
    assert not node.spec.taints, node.spec.taints


def test_host_network_job_completes_and_its_log_is_readable(k8s_cluster: K8sCluster) -> None:
    ns = k8s_cluster.new_namespace("job-ok")
    marker = f"hello-{uuid.uuid4().hex[:6]}"
    k8s_cluster.batch().create_namespaced_job(
        ns, _tiny_job(k8s_cluster, "ok", ["0", "0", marker]))

    job = _wait_job_finished(k8s_cluster, ns, "ok")

    assert _condition(job, "Complete") is not None, job.status
    assert job.status.succeeded == 1
    pod = _job_pod(k8s_cluster, ns, "ok")
    assert pod.spec.node_name == k8s_cluster.node_name
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    # The pod log goes apiserver -> kubelet (TLS, webhook authz): the path log_tail uses.
    log = k8s_cluster.core().read_namespaced_pod_log(pod.metadata.name, ns)
    assert marker in log


def test_container_exiting_3_fails_the_job(k8s_cluster: K8sCluster) -> None:
    ns = k8s_cluster.new_namespace("job-fail")
    k8s_cluster.batch().create_namespaced_job(
        ns, _tiny_job(k8s_cluster, "fails", ["3", "0", "failing on purpose"]))

    job = _wait_job_finished(k8s_cluster, ns, "fails")

    failed = _condition(job, "Failed")
    assert failed is not None and failed.reason == "BackoffLimitExceeded", job.status
    assert _condition(job, "Complete") is None
    terminated = _job_pod(k8s_cluster, ns, "fails").status.container_statuses[0].state.terminated
    assert terminated.exit_code == 3


def test_rbac_is_enforced_for_service_accounts(k8s_cluster: K8sCluster) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    ns = k8s_cluster.new_namespace("rbac")
    core = k8s_cluster.core()
    core.create_namespaced_service_account(ns, {"metadata": {"name": "runner"}})
    as_sa = client.BatchV1Api(k8s_cluster.api_client(
        impersonate=f"system:serviceaccount:{ns}:runner"))

    with pytest.raises(ApiException) as refused:
        as_sa.list_namespaced_job(ns)
    assert refused.value.status == 403

    rbac = client.RbacAuthorizationV1Api(k8s_cluster.api_client())
    rbac.create_namespaced_role(ns, {
        "metadata": {"name": "jobs-reader"},
        "rules": [{"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["list"]}]})
    rbac.create_namespaced_role_binding(ns, {
        "metadata": {"name": "runner-reads-jobs"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                    "name": "jobs-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "runner", "namespace": ns}]})

    # The authorizer's RBAC cache is fed by watches: allow the binding a moment to arrive.
    deadline = time.monotonic() + 10
    while True:
        try:
            assert as_sa.list_namespaced_job(ns).items == []
            break
        except ApiException as exc:
            if exc.status != 403 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    # Still refused everywhere else.
    with pytest.raises(ApiException) as other_ns:
        as_sa.list_namespaced_job("default")
    assert other_ns.value.status == 403


def test_job_writes_to_a_manual_hostpath_volume(k8s_cluster: K8sCluster, tmp_path: Path) -> None:
    ns = k8s_cluster.new_namespace("pv")
    store = tmp_path / "run-store"
    pv_name = f"store-{ns}"
    k8s_cluster.create_pv(pv_name, store, claim_namespace=ns, claim_name="run-store")
    core = k8s_cluster.core()
    core.create_namespaced_persistent_volume_claim(ns, {
        "metadata": {"name": "run-store"},
        "spec": {"storageClassName": "manual", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "100Mi"}}}})
    job = _tiny_job(k8s_cluster, "writer", ["0", "0", "written-in-a-pod", "/store/out.txt"],
                    volumes=[{"name": "store",
                              "persistentVolumeClaim": {"claimName": "run-store"}}])
    job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [
        {"name": "store", "mountPath": "/store"}]
    k8s_cluster.batch().create_namespaced_job(ns, job)

    done = _wait_job_finished(k8s_cluster, ns, "writer")

    assert _condition(done, "Complete") is not None, done.status
    pvc = core.read_namespaced_persistent_volume_claim("run-store", ns)
    assert pvc.status.phase == "Bound" and pvc.spec.volume_name == pv_name
    assert (store / "out.txt").read_text() == "written-in-a-pod\n"


def _component_pids(cluster: K8sCluster) -> dict[str, str]:
    return {p.stem: p.read_text().strip() for p in (cluster.state_dir / "pids").glob("*.pid")}


def test_up_when_up_is_a_no_op_even_from_two_processes_at_once(k8s_cluster: K8sCluster) -> None:
    before = _component_pids(k8s_cluster)
    assert len(before) == 6, before
    procs = [subprocess.Popen(["bash", str(CLUSTER_SH), "up"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]

    assert [rc for rc, _ in outcomes] == [0, 0], outcomes
    # Nothing was restarted: same processes.
    assert _component_pids(k8s_cluster) == before


def test_a_component_that_cannot_start_is_named_with_its_log(
        k8s_cluster: K8sCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second cluster in another state dir: its etcd finds port 2379 taken by the running
    # cluster's etcd. The failure names the component, the cause and the end of its log.
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "etcd.log").write_text("line one\nthe last line of an earlier run\n")
    monkeypatch.setenv("AO_K8S_STATE_DIR", str(state))

    with pytest.raises(ClusterUnavailable) as failed:
        start_cluster()

    message = str(failed.value)
    assert "error: etcd: port 2379 is already in use by \"etcd\"" in message, message
    assert f"last lines of {state}/logs/etcd.log" in message
    assert "the last line of an earlier run" in message
    # Nothing of the second cluster was started.
    assert not list((state / "pids").glob("*.pid"))
