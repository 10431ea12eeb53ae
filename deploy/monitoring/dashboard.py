"""Build ``grafana-dashboard.json``: TF Serving and the upload gateway on one Grafana dashboard.

    python deploy/monitoring/dashboard.py > deploy/monitoring/grafana-dashboard.json

Written with Grafana's own Foundation SDK (``grafana-foundation-sdk``: builders generated from
Grafana's schema), so the JSON is Grafana's dashboard model; tests/test_monitoring.py checks that
the committed file is what this script writes and that every metric it queries exists.

Metric names: TF Serving exports its TensorFlow metrics with ``/`` turned into ``:``, latencies in
microseconds. Its metrics carry no version label, so what is per version comes from the gateway,
which records the version that answered each scan.
"""

from __future__ import annotations

import json
import sys

from grafana_foundation_sdk.builders import common, dashboard, heatmap, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import LegendDisplayMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableOption
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

UID = "deepfake-serving"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
TFS = ":tensorflow:serving:"
MODEL = 'model_name="$model"'


def query(expr: str, legend: str = "") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend or "__auto")


def series(title: str, unit: str, *queries: prometheus.Dataquery, description: str = "") -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .datasource(DATASOURCE)
        .legend(common.VizLegendOptions().show_legend(True).display_mode(LegendDisplayMode.TABLE))
        .height(8)
        .span(8)
    )
    if description:
        panel = panel.description(description)
    return with_targets(panel, *queries)


def with_targets(panel, *queries: prometheus.Dataquery):  # type: ignore[no-untyped-def]
    """Add the queries with their refIds (A, B, ...), which Grafana needs to tell them apart."""
    for i, q in enumerate(queries):
        panel = panel.with_target(q.ref_id(chr(ord("A") + i)))
    return panel


def quantiles(metric: str, by: str, selector: str, scale: str = "") -> list[prometheus.Dataquery]:
    return [
        query(
            f"histogram_quantile({q}, sum by (le{', ' + by if by else ''}) "
            f"(rate({metric}_bucket{{{selector}}}[{RATE}]))){scale}",
            f"p{int(q * 100)} {{{{{by}}}}}" if by else f"p{int(q * 100)}",
        )
        for q in (0.5, 0.99)
    ]


def build() -> dict:
    board = (
        dashboard.Dashboard("deepfake-serving: TF Serving and the upload gateway")
        .uid(UID)
        .tags(["deepfake-serving", "tensorflow-serving"])
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("model")
            .label("Model")
            .datasource(DATASOURCE)
            .query(f"label_values({TFS}request_count, model_name)")
            .current(VariableOption(text="deepfake_detector", value="deepfake_detector"))
        )
        .with_row(dashboard.Row("TF Serving"))
        .with_panel(
            series(
                "Requests by status",
                "reqps",
                query(f"sum by (status) (rate({TFS}request_count{{{MODEL}}}[{RATE}]))", "{{status}}"),
            )
        )
        .with_panel(
            series(
                "Error ratio",
                "percentunit",
                query(
                    f'sum(rate({TFS}request_count{{{MODEL}, status!="OK"}}[{RATE}])) / '
                    f"sum(rate({TFS}request_count{{{MODEL}}}[{RATE}]))",
                    "errors / requests",
                ),
            )
        )
        .with_panel(
            series(
                "Request latency by API",
                "s",
                *quantiles(f"{TFS}request_latency", "API", MODEL, " / 1e6"),
                description="Successful calls, from arrival to answer (TF Serving records microseconds).",
            )
        )
        .with_panel(
            series(
                "Model run latency",
                "s",
                *quantiles(f"{TFS}runtime_latency", "API", MODEL, " / 1e6"),
            )
        )
        .with_panel(
            series(
                "Batching: requests per batch and queueing",
                "short",
                query(
                    f"sum(rate({TFS}request_count{{{MODEL}}}[{RATE}])) / "
                    f"sum(rate({TFS}batching_session:wrapped_run_count[{RATE}]))",
                    "requests per batch",
                ),
                query(
                    f"histogram_quantile(0.99, sum by (le) "
                    f"(rate({TFS}batching_session:queuing_latency_bucket[{RATE}]))) / 1e3",
                    "p99 queueing (ms)",
                ),
            )
        )
        .with_panel(
            series(
                "Version loads (warm-ups)",
                "short",
                query(
                    f"sum by (model_path, status) (increase({TFS}model_warmup_latency_count[{RATE}]))",
                    "{{model_path}} {{status}}",
                ),
                description="One warm-up runs at every version load: a new version, a rollback, a restart.",
            )
        )
        .with_row(dashboard.Row("Upload gateway"))
        .with_panel(
            series(
                "Uploads by answer",
                "reqps",
                query(
                    f'sum by (code) (rate(deepfake_web_requests_total{{route="/v1/scan"}}[{RATE}]))',
                    "{{code}}",
                ),
                query(f"sum by (reason) (rate(deepfake_web_refused_total[{RATE}]))", "refused: {{reason}}"),
            )
        )
        .with_panel(
            series(
                "Scan latency by model version",
                "s",
                *quantiles("deepfake_web_version_scan_seconds", "model_version", ""),
            )
        )
        .with_panel(
            series(
                "Verdict mix",
                "reqps",
                query(f"sum by (label) (rate(deepfake_web_verdicts_total[{RATE}]))", "{{label}}"),
            )
        )
        .with_panel(
            with_targets(
                stat.Panel()
                .title("NO_FACE share (last verdicts)")
                .unit("percentunit")
                .datasource(DATASOURCE),
                query("max(deepfake_web_no_face_ratio)", "NO_FACE"),
            )
            .height(8)
            .span(4)
        )
        .with_panel(
            with_targets(
                stat.Panel().title("Model server reachable").datasource(DATASOURCE),
                query("min(deepfake_web_model_available)", "available"),
            )
            .height(8)
            .span(4)
        )
        .with_panel(
            series(
                "Mean P(fake) by version and target",
                "percentunit",
                query(
                    f"sum by (model_version, target) (rate(deepfake_web_fake_probability_sum[{RATE}])) / "
                    f"sum by (model_version, target) (rate(deepfake_web_fake_probability_count[{RATE}]))",
                    "v{{model_version}} {{target}}",
                ),
                description="A canary whose scores drift from stable's on the same traffic is suspect.",
            )
        )
        .with_panel(
            with_targets(
                heatmap.Panel().title("P(fake) distribution").datasource(DATASOURCE),
                query(
                    f"sum by (le) (increase(deepfake_web_fake_probability_bucket[{RATE}]))", "{{le}}"
                ).format(PromQueryFormat.HEATMAP),
            )
            .height(8)
            .span(8)
        )
        .with_panel(
            series(
                "Upload slots in use",
                "short",
                query("sum by (stage) (deepfake_web_slots_in_use)", "{{stage}} in use"),
                query("sum by (stage) (deepfake_web_slots)", "{{stage}} available"),
            )
        )
    )
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
