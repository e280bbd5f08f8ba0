"""The daemon's Kubernetes deployment (deploy/kubernetes), rendered as ``kubectl apply -k``
would apply it: every object valid against the Kubernetes schemas, and wired to the others
and to the daemon's contract (the port, the probes, the token file, the database URL, the
IRSA service account that `smrun iam-policy --daemon` trusts).

It is rendered by ``kubectl kustomize`` where a kubectl exists, and otherwise by
:func:`render`, which applies what the base uses (its resources and the ``images:``
transformer) and refuses anything else; where both exist, they must agree."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from smrun.iam import DAEMON_SERVICE_ACCOUNT, daemon_policies, usage_of

ROOT = Path(__file__).resolve().parent.parent
BASE = ROOT / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")
# the oldest Kubernetes minor the objects must be valid for (its schemas and every newer one)
MIN_KUBERNETES = (1, 29)
ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"

Object = dict[str, Any]


# --- rendering --------------------------------------------------------------------------

# what render() applies; any other kustomization field would make it unfaithful
SUPPORTED = {"apiVersion", "kind", "resources", "images"}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}


def render(base: Path) -> list[Object]:
    """The objects of a kustomization made of plain resource files and ``images:``."""
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(f"render() does not apply {sorted(unsupported)}")
    objects: list[Object] = []
    for resource in kustomization.get("resources", []):
        path = base / resource
        if not path.is_file():
            raise ValueError(f"render() reads resource files only, not {resource!r}")
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    images = kustomization.get("images", [])
    for obj in objects:
        for spec in pod_specs(obj):
            for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                container["image"] = set_image(container["image"], images)
    return objects


def split_image(image: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest); a registry's port is not a tag."""
    rest, _, digest = image.partition("@")
    name, tag = rest, None
    head, colon, tail = rest.rpartition(":")
    if colon and "/" not in tail:
        name, tag = head, tail
    return name, tag, digest or None


def set_image(image: str, images: Sequence[Mapping[str, str]]) -> str:
    """kustomize's image transformer: the first entry whose ``name`` is the image's name
    gives it ``newName``, and ``digest`` or ``newTag``."""
    name, tag, digest = split_image(image)
    for entry in images:
        if entry["name"] == name:
            name = entry.get("newName", name)
            if "digest" in entry:
                tag, digest = None, entry["digest"]
            elif "newTag" in entry:
                tag, digest = entry["newTag"], None
            break
    return name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def pod_specs(obj: Object) -> Iterator[Object]:
    if obj.get("kind") == "Pod":
        yield obj["spec"]
    elif obj.get("kind") in POD_TEMPLATE_KINDS:
        yield obj["spec"]["template"]["spec"]
    elif obj.get("kind") == "CronJob":
        yield obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def kubectl_render(base: Path) -> list[Object]:
    assert KUBECTL is not None
    done = subprocess.run([KUBECTL, "kustomize", str(base)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_id(objects: Sequence[Object]) -> dict[tuple[str, str], Object]:
    found: dict[tuple[str, str], Object] = {}
    for obj in objects:
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in found, f"{key} twice"
        found[key] = obj
    return found


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], Object]:
    return by_id(kubectl_render(BASE) if KUBECTL else render(BASE))


def one(objects: Mapping[tuple[str, str], Object], kind: str) -> Object:
    found: list[Object] = [obj for (k, _), obj in objects.items() if k == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


@pytest.fixture(scope="module")
def deployment(objects: dict[tuple[str, str], Object]) -> Object:
    return one(objects, "Deployment")


@pytest.fixture(scope="module")
def pod(deployment: Object) -> Object:
    spec: Object = deployment["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="module")
def container(pod: Object) -> Object:
    containers: list[Object] = pod["containers"]
    assert len(containers) == 1, "the daemon and no sidecar"
    return containers[0]


def option(args: Sequence[str], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in ``args``."""
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def secret_keys(secret: Object) -> set[str]:
    return {*secret.get("data", {}), *secret.get("stringData", {})}


# --- the renderings ---------------------------------------------------------------------


def test_the_base_renders_the_five_objects(objects: dict[tuple[str, str], Object]) -> None:
    assert sorted(kind for kind, _ in objects) == [
        "Deployment", "PodDisruptionBudget", "Secret", "Service", "ServiceAccount"]
    for obj in objects.values():
        assert "namespace" not in obj["metadata"], "the namespace is the operator's choice"


@pytest.mark.skipif(KUBECTL is None, reason="no kubectl here: rendered in Python only")
def test_the_python_rendering_is_what_kubectl_renders() -> None:
    assert by_id(render(BASE)) == by_id(kubectl_render(BASE))


def test_the_python_rendering_refuses_what_it_would_not_apply(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [a.yaml]\nnamePrefix: x-\n")
    with pytest.raises(ValueError, match="namePrefix"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text("resources: [../other]\n")
    with pytest.raises(ValueError, match="resource files only"):
        render(tmp_path)


def test_the_image_transformer_as_kustomize_applies_it() -> None:
    images = [{"name": "smrun-daemon", "newName": "reg.example:5000/team/smrun-daemon",
               "newTag": "1.2"}, {"name": "pinned", "digest": "sha256:abc"}]
    assert set_image("smrun-daemon", images) == "reg.example:5000/team/smrun-daemon:1.2"
    assert set_image("smrun-daemon:old", images) == "reg.example:5000/team/smrun-daemon:1.2"
    assert set_image("pinned:1", images) == "pinned@sha256:abc"
    assert set_image("reg.example:5000/other", images) == "reg.example:5000/other"
    assert split_image("reg.example:5000/a/b:7@sha256:x") == (
        "reg.example:5000/a/b", "7", "sha256:x")


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    return pytest.importorskip("kubernetes_validate")


def test_every_object_is_valid_against_the_kubernetes_schemas(
    objects: dict[tuple[str, str], Object], kubernetes_validate: Any
) -> None:
    """Strict: an unknown or misplaced field fails too. The schemas ship in the package,
    so this runs offline."""
    bundled = kubernetes_validate.utils.all_versions()
    minors = sorted({tuple(int(n) for n in v.split(".")[:2]) for v in bundled})
    versions = [f"{major}.{minor}" for major, minor in minors if (major, minor) >= MIN_KUBERNETES]
    assert versions, f"no schemas for Kubernetes {MIN_KUBERNETES} or later"
    for version in versions:
        for key, obj in objects.items():
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                path = ".".join(str(p) for p in error.path)
                pytest.fail(f"{key} against Kubernetes {version}: {path}: {error.message}")


def test_the_schema_check_does_catch_a_bad_object(
    deployment: Object, kubernetes_validate: Any
) -> None:
    bad = yaml.safe_load(yaml.safe_dump(deployment))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "{}.{}".format(*MIN_KUBERNETES), strict=True)


# --- the wiring -------------------------------------------------------------------------


def test_the_image_is_the_one_the_kustomization_sets(container: Object) -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    [entry] = kustomization["images"]
    assert container["image"] == f"{entry['newName']}:{entry['newTag']}"
    # the transformer did match: the resource file names the image by the entry's name
    raw = yaml.safe_load((BASE / "deployment.yaml").read_text())
    [raw_container] = raw["spec"]["template"]["spec"]["containers"]
    assert split_image(raw_container["image"])[0] == entry["name"]
    assert "smrun-daemon" in entry["newName"], "the Dockerfile's daemon target, not the KFP image"


def test_two_replicas_that_detach_in_time(deployment: Object, pod: Object) -> None:
    assert deployment["spec"]["replicas"] == 2
    assert 60 <= pod["terminationGracePeriodSeconds"] <= 120
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels)


def test_it_runs_the_daemon_on_the_http_port(container: Object) -> None:
    args = container["args"]
    assert args[0] == "daemon" and "command" not in container, "the image's smrun entrypoint"
    listen = option(args, "--listen")
    assert listen is not None
    host, _, port = listen.rpartition(":")
    assert host == "0.0.0.0"
    [http] = [p for p in container["ports"] if p.get("name") == "http"]
    assert http["containerPort"] == int(port) == 8080


def test_the_probes_hit_healthz_and_readyz_on_the_port_the_service_targets(
    objects: dict[tuple[str, str], Object], container: Object, deployment: Object
) -> None:
    liveness, readiness = container["livenessProbe"], container["readinessProbe"]
    assert liveness["httpGet"] == {"path": "/healthz", "port": "http"}
    assert readiness["httpGet"] == {"path": "/readyz", "port": "http"}
    service = one(objects, "Service")
    assert service["spec"]["type"] == "ClusterIP"
    [port] = service["spec"]["ports"]
    assert port == {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(service["spec"]["selector"], pod_labels)


def test_the_pods_run_as_the_irsa_service_account(
    objects: dict[tuple[str, str], Object], pod: Object
) -> None:
    account = one(objects, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"] == DAEMON_SERVICE_ACCOUNT
    role = account["metadata"]["annotations"][ROLE_ANNOTATION]
    assert re.fullmatch(r"arn:aws:iam::<ACCOUNT_ID>:role/<SMRUN_DAEMON_ROLE>", role)
    # the role's trust policy (`smrun iam-policy --daemon`) names this service account
    trust = daemon_policies(usage_of([]))["daemon"]["trust_policy"]
    [condition] = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
    [subject] = [v for k, v in condition.items() if k.endswith(":sub")]
    assert subject == f"system:serviceaccount:<NAMESPACE>:{account['metadata']['name']}"


def test_the_token_secret_is_mounted_where_token_file_points(
    objects: dict[tuple[str, str], Object], pod: Object, container: Object
) -> None:
    token_file = option(container["args"], "--token-file")
    assert token_file == "/var/run/secrets/smrun/token"
    path = PurePosixPath(token_file)
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert mount.get("readOnly") is True and "subPath" not in mount
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    secret = objects[("Secret", volume["secret"]["secretName"])]
    items = volume["secret"].get("items")
    if items:
        [key] = [i["key"] for i in items if i["path"] == path.name]
    else:
        key = path.name
    assert key in secret_keys(secret)
    assert volume["secret"]["defaultMode"] & 0o007 == 0, "not readable by others"


def test_the_database_url_comes_from_the_secret(
    objects: dict[tuple[str, str], Object], container: Object
) -> None:
    assert option(container["args"], "--database") is None, "no URL in the pod spec"
    [env] = [e for e in container["env"] if e["name"] == "SMRUN_DATABASE_URL"]
    ref = env["valueFrom"]["secretKeyRef"]
    secret = objects[("Secret", ref["name"])]
    assert ref["key"] in secret_keys(secret)


def test_the_secret_holds_placeholders_only(objects: dict[tuple[str, str], Object]) -> None:
    secret = one(objects, "Secret")
    assert "data" not in secret, "placeholders in clear text, so that no value hides in base64"
    for key, value in secret["stringData"].items():
        assert "<" in value and ">" in value, f"{key}: the real value comes from the operator"
    assert "example" in (BASE / "secret.yaml").read_text().lower()


def test_the_disruption_budget_covers_the_pods(
    objects: dict[tuple[str, str], Object], deployment: Object
) -> None:
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selects(budget["spec"]["selector"]["matchLabels"], labels)


def test_the_pods_spread_over_nodes(deployment: Object, pod: Object) -> None:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spread = [c for c in pod.get("topologySpreadConstraints", [])
              if c["topologyKey"] == "kubernetes.io/hostname"]
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = [*anti.get("requiredDuringSchedulingIgnoredDuringExecution", []),
             *(t["podAffinityTerm"]
               for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution", []))]
    by_node = [t for t in terms if t["topologyKey"] == "kubernetes.io/hostname"]
    assert spread or by_node
    for constraint in [*spread, *by_node]:
        assert selects(constraint["labelSelector"]["matchLabels"], labels)


def test_it_runs_non_root_on_a_read_only_root_filesystem(pod: Object, container: Object) -> None:
    context = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    assert context["runAsNonRoot"] is True and context["runAsUser"] == 1000
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    [tmp] = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    [volume] = [v for v in pod["volumes"] if v["name"] == tmp["name"]]
    assert "emptyDir" in volume


def test_it_requests_and_limits_resources(container: Object) -> None:
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert "memory" in resources["limits"]
