"""The operator's dashboards and alerts: Grafana's own model for the dashboard, promtool for the
rules (checked and unit-tested), and every metric they query is one the servers export."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
MONITORING = ROOT / "deploy" / "monitoring"
METRIC = re.compile(r"(:tensorflow:[a-z_:]+|deepfake_(?:web|bulk)_[a-z_]+|\bup\b)")


def dashboard_module():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(MONITORING))
    try:
        import dashboard

        return dashboard
    finally:
        sys.path.remove(str(MONITORING))


def exported_metric_names(tmp: pathlib.Path) -> set[str]:
    """What TF Serving (its names, as the dev server exports them), the gateway and bulk jobs export."""
    from prometheus_client import generate_latest

    from deepfake_client.web.metrics import GatewayMetrics
    from serving.bulk.metrics import BulkMetrics
    from serving.devserver import metrics as tfs

    names = {"up"}  # Prometheus's own, per scrape target
    for name, value in vars(tfs).items():
        if name.isupper() and isinstance(value, str) and value.startswith(tfs.PREFIX):
            names |= {value, value + "_bucket", value + "_sum", value + "_count"}
    text = generate_latest(GatewayMetrics("deepfake_detector").registry).decode()
    names |= {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    for name, kind in re.findall(r"^# TYPE (\S+) (\w+)", text, re.M):  # labelled ones not yet seen too
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" else ("",)
        names |= {name + suffix for suffix in suffixes}
    BulkMetrics("scan", 0, tmp / "progress.prom")
    names |= set(re.findall(r"^(deepfake_bulk_\w+)\{", (tmp / "progress.prom").read_text(), re.M))
    return names


def queries() -> list[str]:
    board = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    return exprs


def test_the_dashboard_file_is_what_the_generator_writes() -> None:
    assert (MONITORING / "grafana-dashboard.json").read_text() == dashboard_module().render()


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    from grafana_foundation_sdk.models.dashboard import Dashboard

    data = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    model = Dashboard.from_json(data)  # Grafana's schema, as its Foundation SDK generates it
    assert model.uid == "deepfake-serving" and len(model.panels) == len(data["panels"]) >= 12
    for panel in data["panels"]:
        targets = panel.get("targets", [])
        assert len({t["refId"] for t in targets}) == len(targets), panel["title"]
        assert all(t["refId"] for t in targets), panel["title"]
    titles = {p["title"] for p in data["panels"]}
    assert {
        "Requests by status",
        "Scan latency by model version",
        "Mean P(fake) by version and target",
    } <= titles


def test_every_queried_metric_is_exported(tmp_path: pathlib.Path) -> None:
    exported = exported_metric_names(tmp_path)
    used = {m.group(1) for expr in queries() for m in METRIC.finditer(expr)}
    assert used, "no metric found in the queries"
    assert used <= exported, sorted(used - exported)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")
def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = subprocess.run(
        ["promtool", "check", "rules", "alerts.yml"], cwd=MONITORING, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=MONITORING, capture_output=True, text=True
    )
    assert test.returncode == 0, test.stdout + test.stderr
    alerts = {
        r["alert"]
        for g in yaml.safe_load((MONITORING / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "alerts_test.yml").read_text()))
    assert alerts == tested  # every alert has a unit test


def test_compose_monitoring_profile_loads_the_rules_and_the_dashboard() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text().replace("!reset", ""))
    services = compose["services"]
    assert "./deploy/monitoring/alerts.yml:/etc/prometheus/alerts.yml:ro" in services["prometheus"]["volumes"]
    prometheus = yaml.safe_load((ROOT / "serving/prometheus.yml").read_text())
    assert prometheus["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert {j["job_name"] for j in prometheus["scrape_configs"]} == {"tfserving", "deepfake-web"}
    grafana = services["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    mounted = {v.split(":")[0] for v in grafana["volumes"]}
    assert "./deploy/monitoring/grafana-dashboard.json" in mounted
    for host in mounted:
        assert (ROOT / host).is_file(), host


def test_the_gateway_records_scores_by_version_and_target() -> None:
    from prometheus_client import generate_latest

    from deepfake_client.web.metrics import GatewayMetrics

    metrics = GatewayMetrics("deepfake_detector")
    faces = [{"fake_probability": 0.12}, {"fake_probability": 0.91}]
    for target in ("label:stable", "label:canary", "version:3"):
        metrics.observe_scan({"label": "FAKE", "model_version": 7, "target": target, "faces": faces}, 0.3)
    text = generate_latest(metrics.registry).decode()
    for target in ("stable", "canary", "version"):
        assert f'deepfake_web_fake_probability_count{{model_version="7",target="{target}"}} 2.0' in text
    assert 'deepfake_web_fake_probability_bucket{le="0.15",model_version="7",target="canary"} 1.0' in text
    assert 'deepfake_web_version_scan_seconds_count{model_version="7"} 3.0' in text
    assert "deepfake_web_model_available 1.0" in text


def test_a_bulk_run_writes_its_progress_for_the_stalled_alert(tmp_path: pathlib.Path) -> None:
    from serving.bulk.metrics import BulkMetrics

    metrics = BulkMetrics("scan", 10, tmp_path / "progress.prom")
    metrics.update(4, 1)
    metrics.update(3, 1)
    text = (tmp_path / "progress.prom").read_text()
    assert (
        'deepfake_bulk_done{command="scan"} 7.0' in text
        and 'deepfake_bulk_running{command="scan"} 1.0' in text
    )
    metrics.close()
    assert 'deepfake_bulk_running{command="scan"} 0.0' in (tmp_path / "progress.prom").read_text()
