"""streamml's own repository, for its tests, benchmarks and Maven builds (never imported by the package).

Where the checkout's example model binaries are (``make models``), and real services for tests:
a Kafka broker and a PostgreSQL server, from an environment variable, testcontainers, or the
repository's scripts (``scripts/kafka.sh``, ``scripts/postgres.sh``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from streamml.testing import LIBRARY_SUFFIX

#: The repository root (this file is tests/support/streamml_dev/repo.py).
REPO_ROOT = Path(__file__).resolve().parents[3]


def models_dir() -> Path:
    """Where ``make models`` puts the example binaries (``$STREAMML_MODELS_DIR`` overrides)."""
    return Path(os.environ.get("STREAMML_MODELS_DIR", REPO_ROOT / "build" / "models"))


def example_model(name: str) -> Path:
    """Path of an example model binary built by ``make models`` (e.g. ``s1_logistic``).

    Raises:
        FileNotFoundError: it has not been built; the message says how to build it.
    """
    path = models_dir() / f"{name}{LIBRARY_SUFFIX}"
    if not path.is_file():
        msg = f"model binary {path} does not exist; build the examples with `make models`"
        raise FileNotFoundError(msg)
    return path


# --- real services for tests -------------------------------------------------------------------

#: The script that runs a local single-node KRaft broker from the Apache Kafka jars.
KAFKA_SCRIPT = REPO_ROOT / "scripts" / "kafka.sh"
#: The image testcontainers starts where a Docker engine answers (KRaft mode).
KAFKA_IMAGE = "confluentinc/cp-kafka:7.9.0"

_kafka_container = None


def docker_engine_answers() -> bool:
    """Whether a Docker engine answers here (not just a ``docker`` client on the PATH)."""
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def kafka_bootstrap() -> str:
    """The bootstrap address of a real Kafka broker for tests and examples.

    In order: ``$STREAMML_KAFKA_BOOTSTRAP`` if set; else a broker started by
    testcontainers where a Docker engine answers (stopped when the process exits);
    else the single-node KRaft broker that ``scripts/kafka.sh start`` runs from the
    Apache Kafka jars resolved with Maven (started if not running, and left running
    for the next session: ``scripts/kafka.sh stop`` stops it).

    Raises:
        RuntimeError: no broker could be started; the message holds the script's output.
    """
    global _kafka_container
    address = os.environ.get("STREAMML_KAFKA_BOOTSTRAP")
    if address:
        return address
    if _kafka_container is None and docker_engine_answers():
        import atexit

        from testcontainers.kafka import KafkaContainer

        _kafka_container = KafkaContainer(KAFKA_IMAGE).with_kraft()
        _kafka_container.start()
        atexit.register(_kafka_container.stop)
    if _kafka_container is not None:
        return _kafka_container.get_bootstrap_server()
    return kafka_script("start")


def kafka_script(command: str) -> str:
    """Run ``scripts/kafka.sh COMMAND`` (start, stop, restart, status) and return what it printed.

    Raises:
        RuntimeError: the script failed; the message holds its output.
    """
    return run_script(KAFKA_SCRIPT, command, instead="set STREAMML_KAFKA_BOOTSTRAP")


def run_script(script: Path, *args: str, instead: str = "") -> str:
    """Run one of the repo's service scripts (``scripts/*.sh``) and return the last line it printed.

    Args:
        script: the script's path.
        *args: its arguments (e.g. ``start``).
        instead: what to do when the script is absent (a source checkout is needed).

    Raises:
        RuntimeError: the script is absent or failed; the message holds its output.
    """
    if not script.is_file():
        msg = f"{script} does not exist; run from a source checkout" + (f" or {instead}" if instead else "")
        raise RuntimeError(msg)
    done = subprocess.run(["bash", str(script), *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        name = f"scripts/{script.name} {' '.join(args)}".rstrip()
        msg = f"{name} failed (exit {done.returncode}):\n{done.stderr}{done.stdout}"
        raise RuntimeError(msg)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


#: The script that runs a local PostgreSQL server (installing Debian's package if needed).
POSTGRES_SCRIPT = REPO_ROOT / "scripts" / "postgres.sh"
#: The image testcontainers starts where a Docker engine answers.
POSTGRES_IMAGE = "postgres:16-alpine"

_postgres_container = None


def postgres_uri() -> str:
    """The URI of a real PostgreSQL database for tests and examples.

    In order: ``$STREAMML_POSTGRES_URI`` if set; else a server started by testcontainers
    where a Docker engine answers (stopped when the process exits); else the local server
    that ``scripts/postgres.sh start`` runs (started if not running, and left running:
    ``scripts/postgres.sh stop`` stops it).

    Raises:
        RuntimeError: no server could be started; the message holds the script's output.
    """
    global _postgres_container
    uri = os.environ.get("STREAMML_POSTGRES_URI")
    if uri:
        return uri
    if _postgres_container is None and docker_engine_answers():
        import atexit

        from testcontainers.postgres import PostgresContainer

        _postgres_container = PostgresContainer(POSTGRES_IMAGE, driver=None)
        _postgres_container.start()
        atexit.register(_postgres_container.stop)
    if _postgres_container is not None:
        return _postgres_container.get_connection_url()
    return run_script(POSTGRES_SCRIPT, "start", instead="set STREAMML_POSTGRES_URI")
