"""A real single-node Apache Kafka 4.x broker (KRaft, broker + controller) run on 127.0.0.1.

The jars come from Maven Central through the ``pom.xml`` beside this module, resolved once with
``mvn dependency:copy-dependencies`` into a libs folder (Maven's own cache is ``~/.m2``). The
broker's configuration, data, pid file and logs live under one data folder (``.kafka/`` by
default)::

    <data_dir>/server.properties   generated from server-template.properties
    <data_dir>/data/               Kafka's log.dirs (formatted once with a fresh cluster id)
    <data_dir>/logs/server.log     the broker's log (stdout.log: JVM console, warnings only)
    <data_dir>/broker.pid          pid of the running JVM
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from string import Template

from tracelab import config
from tracelab.errors import BrokerError, UsageError

PACKAGE_DIR = Path(__file__).resolve().parent
POM_PATH = PACKAGE_DIR / "pom.xml"
LOG4J_PATH = PACKAGE_DIR / "log4j2.properties"
TEMPLATE_PATH = PACKAGE_DIR / "server-template.properties"
_STAMP = ".pom-sha256"
_MAIN_CLASS = "kafka.Kafka"


def _pom_digest() -> str:
    return hashlib.sha256(POM_PATH.read_bytes()).hexdigest()


def jars_installed(libs_dir: Path | None = None) -> bool:
    """True when ``libs_dir`` holds the jars the shipped ``pom.xml`` resolves to.

    Example: ``jars_installed()`` -> ``False`` before the first ``install_jars()``.
    """
    libs = Path(libs_dir or config.KAFKA_LIBS_DIR)
    stamp = libs / _STAMP
    return stamp.is_file() and stamp.read_text().strip() == _pom_digest()


def install_jars(libs_dir: Path | None = None, *, force: bool = False, quiet: bool = True) -> Path:
    """Resolve the broker's jars with Maven into ``libs_dir`` (cached; a no-op when present).

    Maven downloads into ``~/.m2`` the first time; later calls only copy from that cache.
    Raises ``BrokerError`` when Maven is missing or fails.

    Example: ``install_jars()`` -> ``PosixPath('.../.kafka/libs')``
    """
    libs = Path(libs_dir or config.KAFKA_LIBS_DIR)
    if not force and jars_installed(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven ('mvn') is not on PATH; it is needed once to fetch the Kafka jars")
    libs.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tracelab-mvn-", dir=libs.parent) as work:
        work_dir = Path(work)
        shutil.copy2(POM_PATH, work_dir / "pom.xml")
        out = work_dir / "libs"
        cmd = [mvn, "-B", "-Dstyle.color=never", "-f", str(work_dir / "pom.xml")]
        if quiet:
            cmd.append("-q")
        cmd += [
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={out}",
        ]
        proc = subprocess.run(cmd, cwd=work_dir, capture_output=quiet, text=True, check=False)
        if proc.returncode != 0:
            detail = ((proc.stdout or "") + (proc.stderr or ""))[-2000:]
            raise BrokerError(
                f"Maven could not resolve the Kafka jars (exit {proc.returncode})\n{detail}"
            )
        if not any(out.glob("kafka_2.13-*.jar")):
            raise BrokerError(f"Maven finished but no kafka_2.13 jar is in {out}")
        (out / _STAMP).write_text(_pom_digest() + "\n")
        if libs.exists():
            shutil.rmtree(libs)
        out.rename(libs)
    return libs


def new_cluster_id() -> str:
    """A fresh KRaft cluster id: 16 random bytes in URL-safe base64 without padding (22 chars).

    Never one that starts with ``-``: the storage tool's command line would take it for an
    option (Kafka's own random ids skip those for the same reason).

    Example: ``len(new_cluster_id())`` -> ``22``
    """
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode("ascii").rstrip("=")
        if not cid.startswith("-"):
            return cid


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on ``host:port``.

    Example: ``port_is_free(9092)``
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that is free right now (the OS picks it).

    Example: ``free_port()`` -> ``41873``
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def broker_answers(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when a Kafka broker at ``bootstrap`` answers a metadata request.

    Example: ``broker_answers("127.0.0.1:9092")``
    """
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError):
        return False
    ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=ms,
            bootstrap_timeout_ms=ms,
            client_id="tracelab-probe",
        )
    except (KafkaError, OSError):
        return False
    try:
        info = admin.describe_cluster()
        return any(not b.get("is_fenced") for b in info.get("brokers") or ())
    except (KafkaError, OSError):
        return False
    finally:
        with contextlib.suppress(Exception):
            admin.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # A zombie is dead, but a "Z" leader thread whose other threads still run (a JVM whose
        # main thread has returned while its shutdown hooks stop the broker) is not.
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return _thread_count(pid) > 1
    except OSError:
        pass
    return True


def _thread_count(pid: int) -> int:
    """Threads of ``pid`` (0 when it is gone)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def _is_kafka_process(pid: int, data_dir: Path) -> bool:
    """Guards against pid reuse: the process must be a JVM running kafka.Kafka on our config."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return _pid_alive(pid)
    args = [a.decode(errors="replace") for a in cmdline]
    return _MAIN_CLASS in args and str(data_dir / "server.properties") in args


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """What ``LocalBroker.status()`` reports."""

    running: bool  # the JVM process is alive
    answering: bool  # it answers Kafka requests
    pid: int | None
    bootstrap: str
    data_dir: Path

    def describe(self) -> str:
        """One human line.

        Example: ``status.describe()`` -> ``'running (pid 4242) on 127.0.0.1:9092, data .kafka'``
        """
        if not self.running:
            return f"stopped (bootstrap would be {self.bootstrap}, data {self.data_dir})"
        state = "running" if self.answering else "starting or unhealthy"
        return f"{state} (pid {self.pid}) on {self.bootstrap}, data {self.data_dir}"


class LocalBroker:
    """A single-node Kafka broker on 127.0.0.1 whose files live under ``data_dir``.

    Example:
        >>> broker = LocalBroker(port=9092)          # doctest: +SKIP
        >>> broker.start()                          # doctest: +SKIP
        '127.0.0.1:9092'
        >>> broker.stop()                           # doctest: +SKIP
    """

    def __init__(
        self,
        data_dir: Path | str | None = None,
        port: int = config.DEFAULT_BROKER_PORT,
        controller_port: int | None = None,
        *,
        libs_dir: Path | str | None = None,
        partitions: int = config.DEFAULT_PARTITIONS,
        heap: str = "1g",
        jvm_opts: Sequence[str] = (),
    ) -> None:
        if not 0 < int(port) < 65536:
            raise BrokerError(f"invalid broker port {port!r}")
        if controller_port is None:
            controller_port = port + 1
        if not 0 < int(controller_port) < 65536 or controller_port == port:
            raise BrokerError(f"invalid controller port {controller_port!r}")
        if partitions < 1:
            raise BrokerError(f"partitions must be >= 1, got {partitions}")
        self.data_dir = Path(data_dir or config.KAFKA_DIR).resolve()
        self.port = int(port)
        self.controller_port = int(controller_port)
        self.libs_dir = Path(libs_dir or config.KAFKA_LIBS_DIR).resolve()
        self.partitions = partitions
        min_heap(heap)  # validates
        self.heap = heap
        #: Extra JVM options (also read from ``$TRACELAB_KAFKA_JVM_OPTS``); e.g. the tests pass
        #: ``-XX:TieredStopAtLevel=1``, which halves the start-up time.
        self.jvm_opts = tuple(jvm_opts)
        self._proc: subprocess.Popen[bytes] | None = None

    # ----------------------------------------------------------------- paths
    @property
    def bootstrap(self) -> str:
        """``"127.0.0.1:<port>"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def kafka_data(self) -> Path:
        return self.data_dir / "data"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    # ---------------------------------------------------------------- status
    def pid(self) -> int | None:
        """The pid of this data folder's running broker JVM, else None (clears a stale pid file)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and _is_kafka_process(pid, self.data_dir):
            return pid
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        return None

    def status(self) -> BrokerStatus:
        """Whether the broker runs and answers.

        Example: ``LocalBroker().status().describe()``
        """
        pid = self.pid()
        answering = pid is not None and broker_answers(self.bootstrap, timeout=2.0)
        return BrokerStatus(pid is not None, answering, pid, self.bootstrap, self.data_dir)

    # ----------------------------------------------------------------- start
    def _write_config(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        text = Template(TEMPLATE_PATH.read_text()).substitute(
            port=self.port,
            controller_port=self.controller_port,
            log_dirs=str(self.kafka_data),
            partitions=self.partitions,
        )
        self.properties_path.write_text(text)

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        if java_home and (Path(java_home) / "bin" / "java").is_file():
            return str(Path(java_home) / "bin" / "java")
        java = shutil.which("java")
        if java is None:
            raise BrokerError("Java ('java') is not on PATH; Kafka needs Java 17 or newer")
        return java

    def _jvm_args(self) -> list[str]:
        return [
            self._java(),
            f"-Xms{min_heap(self.heap)}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.log_dir}",
            f"-Dlog4j2.configurationFile={LOG4J_PATH}",
            *self.jvm_opts,
            *os.environ.get("TRACELAB_KAFKA_JVM_OPTS", "").split(),
            "-cp",
            str(self.libs_dir / "*"),
        ]

    def _format_storage(self) -> None:
        if (self.kafka_data / "meta.properties").is_file():
            return
        cmd = [
            *self._jvm_args(),
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            new_cluster_id(),
            "--config",
            str(self.properties_path),
            "--ignore-formatted",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise BrokerError(
                f"formatting Kafka storage in {self.kafka_data} failed:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )

    def start(self, timeout: float = 120.0) -> str:
        """Start the broker unless it already runs; wait until it answers; return the bootstrap.

        Installs the jars on first use. Raises ``BrokerError`` if a port is taken by another
        program or the broker does not answer within ``timeout`` seconds.

        Example: ``LocalBroker(port=9092).start()`` -> ``'127.0.0.1:9092'``
        """
        pid = self.pid()
        if pid is not None:
            self._wait_ready(pid, timeout)
            return self.bootstrap
        for port in (self.port, self.controller_port):
            if not port_is_free(port):
                raise BrokerError(
                    f"port 127.0.0.1:{port} is already in use by another program; "
                    "choose another with --port (the controller uses port + 1)"
                )
        install_jars(self.libs_dir)
        self._write_config()
        self._format_storage()
        stdout = open(self.log_dir / "stdout.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                [*self._jvm_args(), _MAIN_CLASS, str(self.properties_path)],
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
            )
        finally:
            stdout.close()
        self.pid_file.write_text(f"{self._proc.pid}\n")
        self._wait_ready(self._proc.pid, timeout)
        return self.bootstrap

    def _wait_ready(self, pid: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            if self._proc is not None and self._proc.pid == pid and self._proc.poll() is not None:
                raise BrokerError(
                    f"the Kafka broker exited with code {self._proc.returncode} while starting; "
                    f"see {self.log_dir / 'server.log'}\n{self._log_tail()}"
                )
            if not _pid_alive(pid):
                raise BrokerError(
                    f"the Kafka broker (pid {pid}) died while starting\n{self._log_tail()}"
                )
            if broker_answers(self.bootstrap, timeout=2.0):
                return
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"the Kafka broker (pid {pid}) did not answer on {self.bootstrap} within "
                    f"{timeout:.0f}s; see {self.log_dir / 'server.log'}"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)

    def _log_tail(self, lines: int = 20) -> str:
        chunks = []
        for name in ("stdout.log", "server.log"):
            path = self.log_dir / name
            with contextlib.suppress(OSError):
                chunks.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(chunks)

    # ------------------------------------------------------------------ stop
    def stop(self, timeout: float = 60.0) -> bool:
        """Stop the broker (SIGTERM, then wait; SIGKILL only after ``timeout``).

        Returns True if a running broker was stopped, False if none ran.

        Example: ``LocalBroker().stop()`` -> ``True``
        """
        pid = self.pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not self._wait_exit(pid, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
        with contextlib.suppress(OSError):
            self.pid_file.unlink()
        return True

    def kill(self) -> None:
        """SIGKILL the broker at once (crash tests); its data stays as a crash leaves it."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._wait_exit(pid, 10.0)
            with contextlib.suppress(OSError):
                self.pid_file.unlink()

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is not None and self._proc.pid == pid:
                try:
                    self._proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                    self._proc = None
                    return True
                except subprocess.TimeoutExpired:
                    return False
            if not _pid_alive(pid):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def __enter__(self) -> LocalBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalBroker(data_dir={str(self.data_dir)!r}, port={self.port})"


def min_heap(heap: str) -> str:
    """The initial heap for a maximum heap: a quarter of it, at least 128m.

    Example: ``min_heap("1g")`` -> ``'256m'``
    """
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    text = heap.strip().lower()
    if not text or text[-1] not in units:
        raise BrokerError(f"heap must look like 512m or 1g, got {heap!r}")
    try:
        mb = float(text[:-1]) * units[text[-1]]
    except ValueError as exc:
        raise BrokerError(f"heap must look like 512m or 1g, got {heap!r}") from exc
    return f"{max(128, int(mb // 4))}m"


def ensure_broker(
    port: int = config.DEFAULT_BROKER_PORT,
    data_dir: Path | str | None = None,
    *,
    timeout: float = 120.0,
) -> str:
    """The bootstrap of a local broker on ``port``, starting it if needed (idempotent).

    ``TRACELAB_BOOTSTRAP`` wins when set: that broker is used as is and never started. A Kafka
    broker that already answers on ``127.0.0.1:port`` (``docker compose up``, for instance) is
    used as well.

    Example: ``ensure_broker()`` -> ``'127.0.0.1:9092'``
    """
    env = config.bootstrap_from_env()
    if env:
        return env
    broker = LocalBroker(data_dir, port=port)
    if broker.pid() is None and broker_answers(broker.bootstrap, timeout=3.0):
        return broker.bootstrap
    return broker.start(timeout=timeout)


def resolve_bootstrap(bootstrap: str | None = None, *, start: bool = True) -> str:
    """The one answer to "which Kafka?": ``bootstrap`` if given, else ``TRACELAB_BOOTSTRAP``,
    else the local broker on the default port (started if needed and ``start``).

    An empty or blank ``bootstrap`` is a :class:`~tracelab.errors.UsageError` (the CLI exits 2),
    never a silent fallback to the defaults.

    Example: ``resolve_bootstrap(None)`` -> ``'127.0.0.1:9092'``
    """
    if bootstrap is not None:
        if not str(bootstrap).strip():
            raise UsageError("the Kafka bootstrap address is empty (give HOST:PORT)")
        return str(bootstrap)
    env = config.bootstrap_from_env()
    if env:
        return env
    if not start:
        return f"127.0.0.1:{config.DEFAULT_BROKER_PORT}"
    return ensure_broker()
