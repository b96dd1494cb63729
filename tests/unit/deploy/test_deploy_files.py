"""deploy/ against the app: env names are Settings fields, probes hit real routes, ports match,
manifests pass the Kubernetes and Compose schemas, the Dockerfile keeps compilers out of the image,
every alert/dashboard expression is valid PromQL, and .env.example lists every setting.

No container engine or cluster runs here: these are the checks that can run without one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import check_jsonschema
import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser

from agentlightning.api.app import create_app
from agentlightning.settings import Settings
from tests.deploy_helpers import (
    ALERTS_FILE,
    COMPOSE_FILE,
    DASHBOARD_DIR,
    DEPLOY,
    DOCKERFILE,
    ENV_EXAMPLE,
    K8S_DIR,
    NON_SETTINGS_ENV,
    ROOT,
    alert_rules,
    all_promql,
    dashboard_panels,
    dashboards,
    k8s_documents,
    load_yaml_documents,
    pod_specs,
    route_table,
    selectors,
    settings_env_names,
)
from tests.helpers import make_settings

APP_SERVICES = ("migrate", "api", "worker", "rl_orchestrator")
K8S_VERSION = "1.30.0"
SPEC_DASHBOARDS = {"System Overview", "RL Performance", "Agent Analytics", "System Health"}


@pytest.fixture(scope="module")
def app_routes() -> dict[str, Any]:
    """Path -> route of the app (built, not started: routes exist as soon as it is created)."""
    return route_table(create_app(make_settings("sqlite+aiosqlite:///:memory:", None, "deploytest")))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml, parsed."""
    return load_yaml_documents(COMPOSE_FILE)[0]


def assert_real_probe(url: str, routes: dict[str, Any]) -> None:
    """A probe path must be a GET route of the app, with only query parameters that route declares."""
    parts = urlsplit(url)
    route = next((r for r in routes.get(parts.path, []) if "GET" in r.methods), None)
    assert route is not None, f"probe path {parts.path} is not a GET route of the app"
    declared = {param.name for param in route.dependant.query_params}
    for name in parse_qs(parts.query):
        assert name in declared, f"{url}: query parameter {name!r} is not declared by the route"


# --- Compose --------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema_path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(compose)] == []
    # The schema is strict enough to catch a misspelt key (a control for the check above).
    broken = json.loads(json.dumps(compose))
    broken["services"]["api"]["healthcheck"]["intervall"] = "1s"
    assert list(validator.iter_errors(broken))


def test_compose_app_services_set_only_real_settings(compose: dict[str, Any]) -> None:
    names = settings_env_names()
    for service in APP_SERVICES:
        environment = compose["services"][service]["environment"]
        for key in environment:
            assert key in names or key in NON_SETTINGS_ENV, f"{service}: {key} is not a Settings field"


def test_compose_secrets_have_no_working_default(compose: dict[str, Any]) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    for secret in ("DB_PASSWORD", "JWT_SECRET", "AGL_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        uses = re.findall(r"\$\{" + secret + r"([^}]*)\}", text)
        assert uses, f"{secret} is never read from the environment"
        for tail in uses:
            assert tail.startswith(":?"), f"${{{secret}{tail}}} must fail when unset (use :?)"
    # No literal secret in any service's environment: each comes from a variable.
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|API_KEY|DATA_SOURCE_NAME|DATABASE_URL", key):
                assert "${" in str(value), f"{name}: {key} has a literal value"


def test_compose_variables_are_documented_in_env_example() -> None:
    listed = _env_example_keys()
    for name in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE_FILE.read_text(encoding="utf-8"))):
        assert name in listed, f"${{{name}}} of docker-compose.yml is missing from .env.example"


def test_compose_topology_follows_the_spec(compose: dict[str, Any], app_routes: dict[str, Any]) -> None:
    services = compose["services"]
    api = services["api"]
    assert api["deploy"]["replicas"] >= 3
    assert api["deploy"]["resources"]["limits"] == {"cpus": "4.0", "memory": "8G"}
    assert api["deploy"]["resources"]["reservations"] == {"cpus": "2.0", "memory": "4G"}
    port = str(Settings.model_fields["port"].default)
    assert api["environment"]["PORT"] == port and api["expose"] == [port]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["worker"]["command"][0] == "worker"
    assert services["lb"]["ports"] == [f"{port}:{port}"]
    nginx = (DEPLOY / "nginx" / "nginx.conf").read_text(encoding="utf-8")
    assert f"server api:{port}" in nginx and f"listen {port};" in nginx
    assert int(services["postgres"]["image"].split(":")[1]) >= 14
    assert services["postgres"]["deploy"]["resources"]["limits"] == {"cpus": "2.0", "memory": "4G"}
    assert services["redis"]["image"].startswith("redis:7")
    assert services["redis"]["command"] == "redis-server --maxmemory 2gb --maxmemory-policy allkeys-lru"
    assert services["redis"]["deploy"]["resources"]["limits"] == {"cpus": "1.0", "memory": "2G"}
    rl = services["rl_orchestrator"]["deploy"]["resources"]
    assert rl["limits"] == {"cpus": "8.0", "memory": "16G"}
    assert rl["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for name in ("prometheus", "grafana"):
        assert name in services
    # The API healthcheck probes a real route.
    probe = next(arg for arg in api["healthcheck"]["test"] if "http://" in arg)
    assert_real_probe(re.search(r"http://[^/]+(/[^']*)", probe).group(1), app_routes)


def test_compose_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name} mounts missing {source}"


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_real_healthcheck(app_routes: dict[str, Any]) -> None:
    parser = DockerfileParser(path=str(DOCKERFILE))
    instructions = parser.structure
    stages: list[list[dict[str, Any]]] = []
    for instruction in instructions:
        if instruction["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    builder, runtime = stages[0], stages[-1]
    assert any("build-essential" in i["value"] for i in builder if i["instruction"] == "RUN")
    assert "slim" in runtime[0]["value"]
    runtime_runs = " ".join(i["value"] for i in runtime if i["instruction"] == "RUN")
    for compiler in ("build-essential", "gcc", "g++", "apt-get install"):
        assert compiler not in runtime_runs, f"the runtime stage installs {compiler}"
    user = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root")
    exposed = [i["value"] for i in runtime if i["instruction"] == "EXPOSE"]
    assert exposed == [str(Settings.model_fields["port"].default)]
    healthcheck = next(i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK")
    assert_real_probe(re.search(r"http://[^/]+(/[^' ]*)", healthcheck).group(1), app_routes)
    # The local model is optional, through a build argument that adds the [local] extra.
    assert "WITH_LOCAL_MODEL" in parser.content and ",local]" in runtime_runs
    for instruction in runtime:
        if instruction["instruction"] == "ENV":
            for key in re.findall(r"(\w+)=", instruction["value"]):
                assert key in settings_env_names() or key.startswith(("PYTHON", "PIP_")), key


def test_dockerignore_keeps_the_context_small() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "**" in lines and "!src/" in lines and "!pyproject.toml" in lines


# --- Kubernetes ------------------------------------------------------------------------------


def test_k8s_manifests_pass_the_kubernetes_schema() -> None:
    checked = 0
    for _path, doc in k8s_documents():
        if doc["kind"] == "Kustomization":
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        checked += 1
    assert checked >= 8
    # Strict mode rejects unknown fields (a control for the loop above).
    deployment = next(doc for _, doc in k8s_documents() if doc["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kustomization = load_yaml_documents(K8S_DIR / "kustomization.yaml")[0]
    files = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml", "secret.template.yaml"}
    assert set(kustomization["resources"]) == files


def test_k8s_env_names_are_settings_and_secrets_exist() -> None:
    names = settings_env_names()
    config = next(doc for _, doc in k8s_documents() if doc["kind"] == "ConfigMap")
    for key in config["data"]:
        assert key in names, f"ConfigMap key {key} is not a Settings field"
    secret = next(doc for _, doc in k8s_documents() if doc["kind"] == "Secret")
    for name, spec in pod_specs():
        for container in spec["containers"]:
            for env in container.get("env", []):
                assert env["name"] in names or env["name"] in NON_SETTINGS_ENV, f"{name}: {env['name']}"
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] == config["metadata"]["name"]


def test_k8s_secret_template_holds_no_real_values() -> None:
    secret = next(doc for _, doc in k8s_documents() if doc["kind"] == "Secret")
    for key, value in secret["stringData"].items():
        if key in ("jwt-secret", "admin-password"):
            assert "REPLACE_ME" in value
        if key == "database-url":
            assert ":REPLACE_ME@" in value


def test_k8s_api_probes_ports_and_resources(app_routes: dict[str, Any]) -> None:
    port = Settings.model_fields["port"].default
    deployments = {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == "Deployment"}
    api = deployments["agent-lightning-api"]
    assert api["spec"]["replicas"] >= 3
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    assert container["resources"] == {
        "requests": {"cpu": "2000m", "memory": "4Gi"},
        "limits": {"cpu": "4000m", "memory": "8Gi"},
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/v2/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v2/health?ready=1"
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == port
        assert_real_probe(container[probe]["httpGet"]["path"], app_routes)
    service = next(doc for _, doc in k8s_documents() if doc["kind"] == "Service")
    assert service["spec"]["ports"][0]["targetPort"] == port
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    worker = deployments["agent-lightning-worker"]["spec"]["template"]
    metrics_port = int(worker["metadata"]["annotations"]["prometheus.io/port"])
    args = worker["spec"]["containers"][0]["args"]
    assert args[0] == "worker" and args[args.index("--metrics-port") + 1] == str(metrics_port)
    assert worker["spec"]["containers"][0]["livenessProbe"]["httpGet"]["port"] == metrics_port
    hpa_targets = {
        doc["spec"]["scaleTargetRef"]["name"] for _, doc in k8s_documents() if doc["kind"] == "HorizontalPodAutoscaler"
    }
    assert hpa_targets == set(deployments)


def test_k8s_pods_run_as_non_root_and_are_scraped() -> None:
    for _, doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        template = doc["spec"]["template"]
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        if doc["kind"] == "Deployment":
            annotations = template["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
    job = next(doc for _, doc in k8s_documents() if doc["kind"] == "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]


# --- Prometheus and Grafana: syntax and structure (metric names: tests/integration/deploy) ----


def test_every_rule_and_dashboard_query_is_valid_promql() -> None:
    exprs = all_promql()
    assert len(exprs) > 60
    for where, expr in exprs:
        assert selectors(expr), f"{where}: no metric in {expr}"


def test_alerts_cover_the_system_health_signals() -> None:
    alerts = {rule["alert"]: rule for rule in alert_rules() if "alert" in rule}
    text = ALERTS_FILE.read_text(encoding="utf-8")
    for metric in (
        "system_cpu_usage_percent",
        "system_memory_usage_percent",
        "system_disk_usage_percent",
        "http_request_duration_seconds_bucket",
        'status_code=~"5.."',
        "pg_up",
        "redis_up",
        "cache_bypassed_total",
    ):
        assert metric in text, metric
    assert any(str(rule["expr"]).startswith("up{") for rule in alerts.values())
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"], name


def test_prometheus_configs_scrape_api_and_workers() -> None:
    compose_config = load_yaml_documents(DEPLOY / "prometheus" / "prometheus.yml")[0]
    jobs = {job["job_name"]: job for job in compose_config["scrape_configs"]}
    port = Settings.model_fields["port"].default
    assert jobs["agent-lightning-api"]["dns_sd_configs"][0]["port"] == port
    assert jobs["agent-lightning-worker"]["dns_sd_configs"][0]["port"] == 9100
    assert compose_config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    k8s_config = load_yaml_documents(DEPLOY / "prometheus" / "prometheus-kubernetes.yml")[0]
    assert k8s_config["scrape_configs"][0]["kubernetes_sd_configs"][0]["role"] == "pod"


def test_four_spec_dashboards_are_provisioned() -> None:
    boards = dashboards()
    titles = {board["title"].split(" / ")[-1] for board in boards.values()}
    assert titles == SPEC_DASHBOARDS
    uids = [board["uid"] for board in boards.values()]
    assert len(set(uids)) == 4
    datasource = load_yaml_documents(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")[0]
    uid = datasource["datasources"][0]["uid"]
    for name, board in boards.items():
        panels = [p for p in dashboard_panels(board) if p["type"] != "row"]
        assert len(panels) >= 6, name
        ids = [p["id"] for p in dashboard_panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids"
        for panel in panels:
            assert panel["datasource"]["uid"] == uid and panel["targets"], f"{name}: {panel['title']}"
    provider = load_yaml_documents(DEPLOY / "grafana" / "provisioning" / "dashboards" / "agent-lightning.yml")[0]
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_dashboards_are_the_generator_output() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_dashboards", DEPLOY / "grafana" / "build_dashboards.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.render().items():
        assert (DASHBOARD_DIR / name).read_text(encoding="utf-8") == text, f"regenerate {name}"


# --- .env.example ----------------------------------------------------------------------------


def _env_example_keys() -> set[str]:
    keys = set()
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^(?:# )?([A-Z][A-Z0-9_]*)=", line)
        if match:
            keys.add(match.group(1))
    return keys


def test_env_example_lists_every_setting() -> None:
    assert settings_env_names() <= _env_example_keys()


def test_env_example_is_the_generator_output_and_sets_no_secret(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_env_example", ROOT / "scripts" / "generate_env_example.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert ENV_EXAMPLE.read_text(encoding="utf-8") == module.render()
    active = {line.split("=", 1)[0] for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"^[A-Z]", line)}
    for secret in ("JWT_SECRET", "AGL_ADMIN_PASSWORD", "LLM_API_KEY", "DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert secret not in active, f"{secret} must be commented out in .env.example"
    # Copied to .env, it loads and gives the defaults.
    env_file = tmp_path / ".env"
    env_file.write_text(ENV_EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    loaded = Settings(_env_file=str(env_file))  # type: ignore[call-arg]
    assert loaded.port == Settings.model_fields["port"].default and loaded.cors_origins == []


def test_probe_check_refuses_unknown_paths_and_parameters(app_routes: dict[str, Any]) -> None:
    assert_real_probe("/api/v2/health?ready=1", app_routes)
    for wrong in ("/api/v2/healthz", "/health", "/api/v2/health?readyy=1"):
        with pytest.raises(AssertionError):
            assert_real_probe(wrong, app_routes)


# --- promtool (Prometheus's own checker), installed by scripts/install-system-deps.sh test -------------------

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool missing (scripts/install-system-deps.sh test)")


def _promtool(*args: str) -> str:
    assert PROMTOOL
    done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120, cwd=DEPLOY / "prometheus")
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@needs_promtool
def test_promtool_accepts_the_rules_and_their_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("check", "rules", "alerts.yml")
    assert "SUCCESS" in _promtool("test", "rules", "alerts_test.yml")


@needs_promtool
def test_promtool_accepts_the_compose_prometheus_config(tmp_path: Path) -> None:
    # prometheus-kubernetes.yml is left out: Debian's promtool is built without Kubernetes discovery.
    for name in ("prometheus.yml",):
        text = (DEPLOY / "prometheus" / name).read_text(encoding="utf-8")
        config = tmp_path / name
        config.write_text(text.replace("/etc/prometheus/alerts.yml", str(ALERTS_FILE)), encoding="utf-8")
        _promtool("check", "config", "--syntax-only", str(config))


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl missing")
def test_kustomize_builds_the_manifests() -> None:
    done = subprocess.run(["kubectl", "kustomize", str(K8S_DIR)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(done.stdout) if doc]
    assert "Secret" not in kinds and kinds.count("Deployment") == 2 and "Job" in kinds
    namespaces = {
        doc["metadata"].get("namespace") for doc in yaml.safe_load_all(done.stdout) if doc["kind"] != "Namespace"
    }
    assert namespaces == {"agent-lightning"}
