"""examples/flink-udf/score.sql on a real Flink session cluster (scripts/flink.sh: a job manager
and a task manager, separate JVMs), Kafka topic in, Kafka topic out, every score checked against
``Model.predict``. The statements go through Flink's SQL client and SQL gateway
(``scripts/flink.sh sql``), as a user submits them.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from kafka_support import FEATURES, consume, feature_rows, json_values, kafka_topics, produce
from streamml import Model
from streamml_dev.repo import REPO_ROOT, run_script

FLINK_SCRIPT = REPO_ROOT / "scripts" / "flink.sh"
EXAMPLE = REPO_ROOT / "examples" / "flink-udf"
ROWS = 400


@pytest.fixture(scope="module")
def flink_rest() -> Iterator[str]:
    """The REST address of the session cluster scripts/flink.sh runs; stopped afterwards if started here."""
    was_running = subprocess.run(["bash", str(FLINK_SCRIPT), "status"], capture_output=True, check=False)
    rest = run_script(FLINK_SCRIPT, "start")
    try:
        yield rest
    finally:
        if was_running.returncode != 0:
            run_script(FLINK_SCRIPT, "stop")


@pytest.fixture(scope="module")
def udf_jar() -> Path:
    """The example's shaded UDF jar; built with Maven (connector installed first) if absent."""
    jars = sorted(p for p in (EXAMPLE / "target").glob("streamml-flink-udf-*.jar"))
    if not jars:
        for module, goal in ((REPO_ROOT / "connectors" / "flink", "install"), (EXAMPLE, "package")):
            subprocess.run(["mvn", "-B", "-q", goal, "-DskipTests"], cwd=module, check=True)
        jars = sorted((EXAMPLE / "target").glob("streamml-flink-udf-*.jar"))
    assert len(jars) == 1, f"expected one streamml-flink-udf jar in {EXAMPLE / 'target'}, found {jars}"
    return jars[0]


def rest_get(rest: str, path: str) -> dict:
    with urllib.request.urlopen(f"http://{rest}{path}", timeout=10) as response:
        return json.loads(response.read())


def pom_property(pom: Path, name: str) -> str:
    found = re.findall(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text())
    assert len(found) == 1, f"expected one <{name}> in {pom}, found {found}"
    return found[0]


def test_the_cluster_runs_the_flink_and_kafka_connector_versions_the_project_builds_against() -> None:
    cluster = REPO_ROOT / "scripts" / "flink" / "pom.xml"
    assert pom_property(cluster, "flink.version") == pom_property(
        REPO_ROOT / "connectors" / "flink" / "pom.xml", "flink.version"
    )
    assert pom_property(cluster, "flink.kafka.version") == pom_property(EXAMPLE / "pom.xml", "flink.kafka.version")


@pytest.mark.flink
@pytest.mark.kafka
@pytest.mark.slow
def test_score_sql_runs_on_the_session_cluster_and_matches_model_predict(
    flink_rest: str, udf_jar: Path, kafka_bootstrap: str, s1_path: Path, s1: Model, tmp_path: Path
) -> None:
    x = feature_rows(ROWS, seed=24)
    with kafka_topics(kafka_bootstrap, ["flink-in", "flink-out"], partitions=2) as (in_topic, out_topic):
        produce(kafka_bootstrap, in_topic, json_values(x), [str(i).encode() for i in range(ROWS)])
        script = (EXAMPLE / "score.sql").read_text()
        for placeholder, value in {
            "UDF_JAR": udf_jar.resolve().as_uri(),
            "MODEL": str(s1_path.resolve()),
            "BOOTSTRAP": kafka_bootstrap,
            "IN_TOPIC": in_topic,
            "OUT_TOPIC": out_topic,
            "SCAN_BOUNDED_MODE": "latest-offset",
        }.items():
            script = script.replace("${" + placeholder + "}", value)
        assert not [line for line in script.splitlines() if "${" in line and not line.startswith("--")]
        sql_file = tmp_path / "score.sql"
        sql_file.write_text(script)

        done = subprocess.run(
            ["bash", str(FLINK_SCRIPT), "sql", str(sql_file)], capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, f"scripts/flink.sh sql failed:\n{done.stderr}\n{done.stdout}"
        submitted = [line.split()[2] for line in done.stdout.splitlines() if line.startswith("submitted job ")]
        assert len(submitted) == 1, done.stdout
        assert f"job {submitted[0]} finished" in done.stdout

        # The job ran on the cluster (not in the submitting JVM) and finished there.
        job = rest_get(flink_rest, f"/jobs/{submitted[0]}")
        assert job["state"] == "FINISHED", job

        records = consume(kafka_bootstrap, out_topic, at_least=ROWS, idle=1.0, timeout=60)

    scores: dict[int, float] = {}
    for record in records:
        row = json.loads(record.value)
        assert set(row) == {"id", "probability"}, row
        assert row["id"] not in scores, f"id {row['id']} scored twice"
        scores[row["id"]] = row["probability"]
    assert sorted(scores) == list(range(ROWS))

    batch = pa.record_batch([pa.array(x[:, j]) for j in range(32)], names=FEATURES)
    expected = s1.predict(batch).column("probability").to_numpy()
    got = np.array([scores[i] for i in range(ROWS)])
    np.testing.assert_array_equal(got, expected)


def test_sql_exits_1_when_a_statement_fails_though_the_sql_client_exits_0(flink_rest: str, tmp_path: Path) -> None:
    script = tmp_path / "bad.sql"
    script.write_text(
        "CREATE TEMPORARY TABLE sink (n BIGINT) WITH ('connector' = 'no-such-connector');\n"
        "INSERT INTO sink VALUES (1);\n"
    )
    done = subprocess.run(
        ["bash", str(FLINK_SCRIPT), "sql", str(script)], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""  # no job was submitted
    assert "Could not find any factory for identifier 'no-such-connector'" in done.stderr
    assert done.stderr.endswith(f"flink.sh: a statement of {script} failed (the SQL client's output above)\n")


def flink_script(tmp_path: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "STREAMML_FLINK_DIR": str(tmp_path / "flink"), "STREAMML_FLINK_PORT": str(port)}
    return subprocess.run(["bash", str(FLINK_SCRIPT), *args], capture_output=True, text=True, env=env, check=False)


def test_start_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = flink_script(tmp_path, port, "start")
    assert done.returncode == 1
    assert done.stderr == f"flink.sh: port {port} is taken by another process; set STREAMML_FLINK_PORT\n"
    assert not (tmp_path / "flink").exists()


def test_sql_without_a_running_cluster_says_to_start_one(tmp_path: Path) -> None:
    script = tmp_path / "empty.sql"
    script.write_text("SET 'parallelism.default' = '1';\n")
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = flink_script(tmp_path, port, "sql", str(script))
    assert done.returncode == 1
    assert done.stderr == f"flink.sh: no cluster on 127.0.0.1:{port}; run scripts/flink.sh start first\n"
    missing = flink_script(tmp_path, port, "sql", str(tmp_path / "nope.sql"))
    assert missing.returncode == 1
    assert missing.stderr == (
        f"flink.sh: usage: scripts/flink.sh sql FILE (got '{tmp_path / 'nope.sql'}', which is not a file)\n"
    )
