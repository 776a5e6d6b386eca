"""The local single-node Kubernetes cluster for ``kubernetes``-marked tests.

``scripts/k8s/cluster.sh up`` starts it (``scripts/test.sh`` does so before pytest; the
``k8s_cluster`` fixture does it too, or finds it running). A cluster that cannot start
FAILS the tests that need it, with the component and the end of its log, never skips.

    def test_x(k8s_cluster):
        ns = k8s_cluster.new_namespace("x")          # fresh, deleted at session end
        batch = k8s_cluster.batch()                   # kubernetes.client.BatchV1Api
        batch.create_namespaced_job(ns, {...})        # image k8s_cluster.tiny_image, ...

See scripts/k8s/README.md for what the cluster is and how to use it from a shell.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
CLUSTER_SH = REPO / "scripts" / "k8s" / "cluster.sh"
IMAGE_SH = REPO / "scripts" / "k8s" / "worker_image.sh"

#: A cold build (no cache) takes several minutes on 2 cores; a cached start about 10 s.
UP_TIMEOUT_SECONDS = 1800
#: A cold image build (debootstrap, wheelhouses, image, import) takes about 10 minutes on 2
#: busy cores, the coordinator variant a few more (and a llama.cpp build if install.sh has
#: not cached the portable wheel); a cached one well under a second.
IMAGE_TIMEOUT_SECONDS = 2400


#: The HOME the test command started with (its caches: the cluster build, the images), read
#: at import, before each test's own HOME is patched in. Not the passwd entry's home: a run
#: with HOME pointed elsewhere (a fresh-machine check with an empty HOME) must use its own.
USER_HOME = os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir


class ClusterUnavailable(RuntimeError):
    """``cluster.sh`` failed; the message names the component and shows its log tail."""


def _cluster_sh(*args: str, timeout: float = 120) -> str:
    # Tests point HOME at a temp dir; the build cache lives under the real one.
    env = {**os.environ, "HOME": USER_HOME}
    try:
        done = subprocess.run(["bash", str(CLUSTER_SH), *args], capture_output=True,
                              text=True, timeout=timeout, check=False, env=env)
    except subprocess.TimeoutExpired as exc:
        raise ClusterUnavailable(f"cluster.sh {' '.join(args)} did not finish in "
                                 f"{timeout:.0f} s") from exc
    if done.returncode != 0:
        raise ClusterUnavailable(
            f"scripts/k8s/cluster.sh {' '.join(args)} failed (exit {done.returncode}):\n"
            f"{done.stderr.strip()[-6000:]}")
    return done.stdout


@dataclass
class K8sCluster:
    """A running cluster: where its kubeconfig is, the admin identity, and helpers."""

    kubeconfig: Path
    server: str
    token: str
    ca_file: Path
    node_name: str
    state_dir: Path
    containerd_socket: Path
    tiny_image: str
    pause_image: str
    _namespaces: list[str] = field(default_factory=list, repr=False)
    _volumes: list[str] = field(default_factory=list, repr=False)

    def api_client(self, *, impersonate: str | None = None, group: str | None = None) -> Any:
        """An official-client ``ApiClient`` for the admin token (in system:masters).

        With ``impersonate`` (e.g. ``system:serviceaccount:ns:sa``, optionally with one
        ``group``) every request is made as that user, so RBAC can be checked for a
        ServiceAccount without its token.
        """
        from kubernetes import client, config

        api = config.new_client_from_config(config_file=str(self.kubeconfig))
        if impersonate:
            api.set_default_header("Impersonate-User", impersonate)
        if impersonate and group:
            api.set_default_header("Impersonate-Group", group)
        assert isinstance(api, client.ApiClient)
        return api

    def core(self) -> Any:
        """``kubernetes.client.CoreV1Api`` as the admin."""
        from kubernetes import client

        return client.CoreV1Api(self.api_client())

    def batch(self) -> Any:
        """``kubernetes.client.BatchV1Api`` as the admin."""
        from kubernetes import client

        return client.BatchV1Api(self.api_client())

    def new_namespace(self, prefix: str = "test") -> str:
        """A fresh namespace, ready for pods (its ``default`` ServiceAccount has its
        token, which the ServiceAccount admission plugin needs); deleted at session end."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        core = self.core()
        core.create_namespace({"metadata": {"name": name,
                                            "labels": {"agentic.io/test": "true"}}})
        self._namespaces.append(name)
        deadline = time.monotonic() + 30
        while True:
            accounts = core.list_namespaced_service_account(name).items
            if any(sa.metadata.name == "default" and sa.secrets for sa in accounts):
                return name
            if time.monotonic() > deadline:
                raise ClusterUnavailable(
                    f"namespace {name}: no default ServiceAccount token after 30 s "
                    f"(kube-controller-manager):\n{self.component_log('kube-controller-manager')}")
            time.sleep(0.1)

    def create_pv(self, name: str, host_path: Path | str, *, claim_namespace: str | None = None,
                  claim_name: str | None = None, size: str = "1Gi") -> None:
        """A hostPath PersistentVolume of class ``manual`` at ``host_path`` (created if
        missing), pre-bound to ``claim_namespace/claim_name`` when given so no other PVC
        takes it; deleted at session end."""
        Path(host_path).mkdir(parents=True, exist_ok=True)
        spec: dict[str, Any] = {
            "storageClassName": "manual",
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(host_path), "type": "DirectoryOrCreate"},
        }
        if claim_namespace and claim_name:
            spec["claimRef"] = {"namespace": claim_namespace, "name": claim_name}
        self.core().create_persistent_volume(
            {"metadata": {"name": name, "labels": {"agentic.io/test": "true"}}, "spec": spec})
        self._volumes.append(name)

    def import_image(self, archive: Path | str) -> None:
        """Load an image archive (docker-archive or OCI) into the node's containerd;
        pods use it with ``imagePullPolicy: Never``."""
        _cluster_sh("import", str(archive), timeout=600)

    def component_log(self, component: str, lines: int = 40) -> str:
        """The last lines of one component's log (etcd, kube-apiserver, containerd,
        kube-controller-manager, kube-scheduler, kubelet)."""
        log = self.state_dir / "logs" / f"{component}.log"
        if not log.exists():
            return f"(no log at {log})"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def cleanup(self) -> None:
        """Delete what the helpers made (namespaces in the background)."""
        from kubernetes.client.exceptions import ApiException

        core = self.core()
        for name in self._namespaces:
            try:
                core.delete_namespace(name, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in self._volumes:
            try:
                core.delete_persistent_volume(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        self._namespaces.clear()
        self._volumes.clear()


def start_cluster() -> K8sCluster:
    """``cluster.sh up`` (a no-op when up, a build when the cache is empty), then the
    cluster's coordinates from ``cluster.sh env``. Raises ``ClusterUnavailable``."""
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster needs root (it runs a kubelet and containerd)")
    _cluster_sh("up", timeout=UP_TIMEOUT_SECONDS)
    env: dict[str, str] = {}
    for line in _cluster_sh("env").splitlines():
        if line.startswith("export ") and "=" in line:
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
    return K8sCluster(
        kubeconfig=Path(env["KUBECONFIG"]), server=env["AO_K8S_SERVER"],
        token=env["AO_K8S_TOKEN"], ca_file=Path(env["AO_K8S_CA"]), node_name=env["AO_K8S_NODE"],
        state_dir=Path(env["AO_K8S_STATE_DIR"]),
        containerd_socket=Path(env["AO_K8S_CONTAINERD_SOCK"]),
        tiny_image=env["AO_K8S_TINY_IMAGE"], pause_image=env["AO_K8S_PAUSE_IMAGE"])


def build_image(cluster: K8sCluster, variant: str = "worker") -> str:
    """``scripts/k8s/worker_image.sh --variant VARIANT``: the image built (or found in the
    cache) and imported into the cluster's containerd; its reference. Fails the test with
    the script's last output when it cannot."""
    env = {**os.environ, "HOME": USER_HOME,  # the test command's cache
           "AO_K8S_CONTAINERD_SOCK": str(cluster.containerd_socket)}
    try:
        done = subprocess.run(["bash", str(IMAGE_SH), "--variant", variant],
                              capture_output=True, text=True, timeout=IMAGE_TIMEOUT_SECONDS,
                              env=env, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{IMAGE_SH.name} --variant {variant} did not finish in "
                    f"{IMAGE_TIMEOUT_SECONDS} s", pytrace=False)
    if done.returncode != 0:
        pytest.fail(f"scripts/k8s/worker_image.sh --variant {variant} failed "
                    f"(exit {done.returncode}):\n{done.stderr.strip()[-6000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def k8s_cluster() -> Iterator[K8sCluster]:
    """The running local cluster (started if needed). Fails, never skips, when it cannot
    start: the message names the component and shows the end of its log."""
    try:
        cluster = start_cluster()
    except ClusterUnavailable as exc:
        pytest.fail(f"Kubernetes test cluster unavailable: {exc}", pytrace=False)
    yield cluster
    cluster.cleanup()
