"""A real single-node Apache Kafka broker (KRaft mode) on 127.0.0.1, for the tests and the demo.

Kafka's jars come from Maven Central through `mvn` once and are cached outside the work tree, so
no Kafka distribution has to be installed. The broker runs as a child JVM in its own process
group; `LocalKafka.stop()` always takes the whole group down. Nothing here ever binds anything
but the loopback address.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

from crossing_monitor.children import die_with_parent
from crossing_monitor.errors import UserError
from crossing_monitor.kafka.admin import quiet_logger

__all__ = [
    "HOST",
    "DEFAULT_KAFKA_VERSION",
    "KAFKA_VERSION",
    "BrokerError",
    "LocalKafka",
    "cache_root",
    "fetch_jars",
    "free_port",
    "jars_cached",
    "kafka_home",
    "libs_dir",
    "marker_path",
]

log = logging.getLogger("crossing_monitor.kafka.broker")

HOST = "127.0.0.1"  # the only address anything here binds or advertises
DEFAULT_KAFKA_VERSION = "4.1.1"  # Kafka 4 (KRaft only); 3.9 is the bridge release, still selectable
VERSION_VARIABLE = "CROSSING_MONITOR_KAFKA_VERSION"
KAFKA_VERSION = os.environ.get(VERSION_VARIABLE) or DEFAULT_KAFKA_VERSION
SCALA_VERSION = "2.13"
# Kafka's jars log through SLF4J 1.7 and ship no binding: Kafka 3 logs with reload4j (log4j 1
# configuration), Kafka 4 with log4j2 (its jars bring log4j-core; SLF4J reaches it through this bridge).
SLF4J_BINDINGS = {
    3: ("org.slf4j", "slf4j-reload4j", "1.7.36"),
    4: ("org.apache.logging.log4j", "log4j-slf4j-impl", "2.24.3"),
}
MARKER = "COMPLETE"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
HEAP = "512m"

Progress = Callable[[str], None]

_POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by crossing-monitor only to let `mvn dependency:copy-dependencies` fetch Kafka's jars. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.crossing-monitor</groupId>
  <artifactId>kafka-jars</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{kafka}</version>
    </dependency>
    <dependency>
      <groupId>{slf4j[0]}</groupId>
      <artifactId>{slf4j[1]}</artifactId>
      <version>{slf4j[2]}</version>
    </dependency>
  </dependencies>
</project>
"""


class BrokerError(UserError):
    """The broker could not be started or died; the message carries the tail of its log."""


# ---- the jar cache ---------------------------------------------------------------------------


def cache_root() -> Path:
    """Where downloads live: never the work tree, so a checkout stays clean and shares the cache."""
    if explicit := os.environ.get("CROSSING_MONITOR_CACHE"):
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "crossing-monitor"


def major_version(version: str) -> int:
    """3 or 4 from "3.9.1" or "4.1.1"; a UserError for anything this launcher cannot run."""
    match = re.fullmatch(r"(\d+)\.\d+\.\d+", version)
    if match is None or int(match[1]) not in SLF4J_BINDINGS:
        supported = " or ".join(f"{m}.x.y" for m in SLF4J_BINDINGS)
        raise UserError(f"{VERSION_VARIABLE}={version!r}: use an Apache Kafka release {supported}, e.g. 4.1.1 or 3.9.1")
    return int(match[1])


def kafka_home(version: str = KAFKA_VERSION) -> Path:
    """The cached Kafka installation: `libs/` plus the completion marker."""
    return cache_root() / f"kafka-{version}"


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return kafka_home(version) / "libs"


def marker_path(version: str = KAFKA_VERSION) -> Path:
    """Written last, inside the directory that is renamed into place: its presence means complete."""
    return kafka_home(version) / MARKER


def jars_cached(version: str = KAFKA_VERSION) -> bool:
    return marker_path(version).is_file() and (libs_dir(version) / f"kafka_{SCALA_VERSION}-{version}.jar").is_file()


def _require(tool: str, why: str, hint: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise UserError(f"`{tool}` not found on PATH; it is needed {why} ({hint})")
    return path


def _require_java() -> str:
    return _require("java", "to run Apache Kafka", "install a JDK/JRE 17, e.g. apt-get install openjdk-17-jre-headless")


@contextlib.contextmanager
def _locked(path: Path, progress: Progress) -> Iterator[None]:
    """Serialise fetches between processes (two test sessions, CI warm-up and a shell)."""
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"waiting for another process fetching into {path.parent} ...")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fetch_jars(progress: Progress | None = None, version: str = KAFKA_VERSION) -> Path:
    """Make sure Kafka's jars are cached and return their directory (fast no-op when they are).

    The download goes into a temporary sibling directory which is renamed into place only after
    the marker is written, so an interrupted fetch never leaves a cache that looks complete.
    """
    say = progress or log.info
    binding = SLF4J_BINDINGS[major_version(version)]
    _require_java()
    if jars_cached(version):
        return libs_dir(version)
    mvn = _require(
        "mvn", "to fetch Apache Kafka's jars from Maven Central", "install Maven, e.g. apt-get install maven"
    )
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    home = kafka_home(version)
    with _locked(root / f"{home.name}.lock", say):
        if jars_cached(version):  # another process finished while we waited
            return libs_dir(version)
        for stale in root.glob(f".{home.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        say(f"fetching Apache Kafka {version} jars (Scala {SCALA_VERSION}) from Maven Central into {home} ...")
        started = time.monotonic()
        partial = Path(tempfile.mkdtemp(prefix=f".{home.name}.partial-", dir=root))
        try:
            build = partial / "build"
            build.mkdir()
            (build / "pom.xml").write_text(_POM.format(scala=SCALA_VERSION, kafka=version, slf4j=binding))
            cmd = [
                mvn, "-q", "-B", "-f", str(build / "pom.xml"), "dependency:copy-dependencies",
                "-DincludeScope=runtime", f"-DoutputDirectory={partial / 'libs'}",
            ]  # fmt: skip
            done = subprocess.run(cmd, cwd=build, capture_output=True, text=True, stdin=subprocess.DEVNULL)
            jars = sorted(p.name for p in (partial / "libs").glob("*.jar"))
            if done.returncode != 0 or f"kafka_{SCALA_VERSION}-{version}.jar" not in jars:
                tail = _tail_text((done.stdout + done.stderr).strip(), 15) or "(no output)"
                raise UserError(f"Maven could not fetch Apache Kafka {version} (exit {done.returncode}):\n{tail}")
            shutil.rmtree(build)
            (partial / MARKER).write_text("\n".join(jars) + "\n")
            partial.chmod(0o755)  # mkdtemp made it private; the cache is meant to be shared
            if home.exists():  # a leftover without marker (e.g. from an older layout)
                shutil.rmtree(home)
            partial.rename(home)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        size = sum(p.stat().st_size for p in libs_dir(version).glob("*.jar")) / 1e6
        say(f"fetched {len(jars)} jars ({size:.0f} MB) in {time.monotonic() - started:.1f} s")
    return libs_dir(version)


# ---- the broker ------------------------------------------------------------------------------


def free_port() -> int:
    """A port the kernel considers free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka does: TIME_WAIT is not "in use"
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex((HOST, port)) == 0


def _tail_text(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def _props_value(value: str | Path) -> str:
    return str(value).replace("\\", "\\\\")


async def _answers(bootstrap: str, cluster_id: str | None, timeout: float) -> bool:
    """A real Kafka-protocol check: bootstrap a client, then ask the advertised broker for metadata.

    Comparing the cluster id makes sure the answer comes from *our* broker, not from another one
    that grabbed a port we picked (ours would then be dying of a bind error).
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.metadata import MetadataRequest

    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        async with asyncio.timeout(timeout):
            await client.bootstrap()
            node = client.get_random_node()
            if node is None:
                return False
            response = await client.send(node, MetadataRequest([]))
        return bool(response.brokers) and cluster_id in (None, getattr(response, "cluster_id", None))
    except Exception:
        return False
    finally:
        await client.close()


class LocalKafka:
    """One KRaft broker+controller JVM on 127.0.0.1; a context manager that starts and stops it.

    `port`/`controller_port` 0 pick free ports. Without `data_dir` a temporary directory is made
    and removed by `stop()`; a given `data_dir` is kept and reused (formatted only once).
    """

    def __init__(
        self,
        port: int = 0,
        controller_port: int = 0,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        start_timeout: float = START_TIMEOUT,
        heap: str = HEAP,
        progress: Progress | None = None,
        version: str = KAFKA_VERSION,
    ) -> None:
        self.version = version
        self._major = major_version(version)
        for p in (port, controller_port):
            if not 0 <= p <= 65535:
                raise UserError(f"port {p} is not a valid TCP port (use 1-65535, or 0 for any free port)")
        self._want_port, self._want_controller_port = port, controller_port
        self.port, self.controller_port = port, controller_port
        self._given_dir = Path(data_dir).expanduser().resolve() if data_dir is not None else None
        self.data_dir: Path | None = self._given_dir
        self.start_timeout = start_timeout
        self.heap = heap
        self._say = progress or log.info
        self._proc: subprocess.Popen[bytes] | None = None
        self._out: object | None = None

    # -- public surface

    @property
    def bootstrap(self) -> str:
        """The `host:port` clients connect to."""
        if self._proc is None:
            raise RuntimeError("LocalKafka is not started")
        return f"{HOST}:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The broker's JVM (the leader of its own process group) while started."""
        return self._proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        """The broker's log4j log (WARN and up, plus the start/stop lines)."""
        assert self.data_dir is not None
        return self.data_dir / "broker.log"

    def log_tail(self, lines: int = 30) -> str:
        """The end of the broker's own log and of the JVM's stdout/stderr, for failure messages."""
        assert self.data_dir is not None
        parts = []
        for path in (self.log_path, self.data_dir / "broker.out"):
            with contextlib.suppress(OSError):
                if text := path.read_text(errors="replace").strip():
                    parts.append(f"--- {path}\n{_tail_text(text, lines)}")
        return "\n".join(parts) or "(the broker wrote nothing)"

    def start(self) -> LocalKafka:
        """Format (first time only), launch and wait until the broker answers Kafka requests."""
        if self._proc is not None:
            raise RuntimeError("LocalKafka is already started")
        java = _require_java()
        self._check_wanted_ports()  # before a possibly long first fetch
        libs = fetch_jars(self._say, self.version)
        try:
            self._prepare_dir()
            for attempt in range(3):
                self._pick_ports()
                self._write_config()
                self._format(java, libs)
                self._launch(java, libs)
                if self._wait_ready():
                    return self
                # Lost the race for a port picked automatically: pick again (rare).
                self._reap()
                self._say(f"a picked port was taken meanwhile; retrying ({attempt + 1}/3)")
            raise BrokerError(f"could not bind free ports on {HOST}:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM the broker's process group, SIGKILL it after STOP_TIMEOUT; remove a temp data dir."""
        try:
            self._reap()
        finally:
            if self._given_dir is None and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"{HOST}:{self.port} pid {self.pid}" if self.alive else "stopped"
        return f"<LocalKafka {state} data={self.data_dir}>"

    # -- steps

    def _prepare_dir(self) -> None:
        if self._given_dir is not None:
            self._given_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir = self._given_dir
        elif self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="crossing-kafka-"))

    def _check_wanted_ports(self) -> None:
        for want in (self._want_port, self._want_controller_port):
            if want and _port_in_use(want):
                raise UserError(f"port {want} on {HOST} is already in use; choose another with --port (0 = any free)")

    def _pick_ports(self) -> None:
        self._check_wanted_ports()
        self.port = self._want_port or free_port()
        self.controller_port = self._want_controller_port or free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()

    def _write_config(self) -> None:
        d = self.data_dir
        assert d is not None
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": _props_value(d),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        (d / "server.properties").write_text(
            "# Written by crossing-monitor (crossing_monitor/kafka/broker.py) at every start.\n"
            + "".join(f"{k}={v}\n" for k, v in props.items())
        )
        if self._major >= 4:
            (d / "log4j2.properties").write_text(
                "# Written by crossing-monitor: warnings and errors only, into broker.log (log4j2, Kafka 4).\n"
                "appender.file.type = File\n"
                "appender.file.name = file\n"
                f"appender.file.fileName = {_props_value(self.log_path)}\n"
                "appender.file.layout.type = PatternLayout\n"
                "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
                "rootLogger.level = WARN\n"
                "rootLogger.appenderRef.file.ref = file\n"
                "logger.raft.name = kafka.server.KafkaRaftServer\n"
                "logger.raft.level = INFO\n"
            )
        else:
            (d / "log4j.properties").write_text(
                "# Written by crossing-monitor: warnings and errors only, into broker.log.\n"
                "log4j.rootLogger=WARN, file\n"
                "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
                "log4j.appender.file=org.apache.log4j.FileAppender\n"
                f"log4j.appender.file.File={_props_value(self.log_path)}\n"
                "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
                "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
            )

    def _cluster_id(self) -> str | None:
        assert self.data_dir is not None
        with contextlib.suppress(OSError):
            for line in (self.data_dir / "meta.properties").read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.partition("=")[2].strip()
        return None

    def _jvm(self, java: str, libs: Path) -> list[str]:
        assert self.data_dir is not None
        return [
            java, f"-Xmx{self.heap}", "-Djava.awt.headless=true", "-Djava.net.preferIPv4Stack=true",
            self._log_config_flag(), "-cp", f"{libs}/*",
        ]  # fmt: skip

    def _log_config_flag(self) -> str:
        assert self.data_dir is not None
        if self._major >= 4:
            return f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}"
        return f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}"

    def _format(self, java: str, libs: Path) -> None:
        assert self.data_dir is not None
        if (self.data_dir / "meta.properties").exists():
            return
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's own Uuid: a leading '-' reads as an option to the tool
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = [*self._jvm(java, libs), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c"]
        cmd.append(str(self.data_dir / "server.properties"))
        self._say(f"formatting KRaft storage in {self.data_dir} (cluster id {cluster_id})")
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            tail = _tail_text((done.stdout + done.stderr).strip(), 15)
            raise BrokerError(f"formatting the KRaft storage in {self.data_dir} failed:\n{tail}")

    def _launch(self, java: str, libs: Path) -> None:
        assert self.data_dir is not None
        self._say(f"starting Apache Kafka {self.version} on {HOST}:{self.port} (controller {self.controller_port})")
        self._out = open(self.data_dir / "broker.out", "ab")  # noqa: SIM115 - lives as long as the JVM
        self._proc = subprocess.Popen(
            [*self._jvm(java, libs), "kafka.Kafka", str(self.data_dir / "server.properties")],
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C in a terminal goes to us, not the JVM
            preexec_fn=die_with_parent(),  # a killed parent (a test run, the demo) leaves no orphan JVM
        )

    def _wait_ready(self) -> bool:
        """True once the broker answers; False if it died of a bind error on a port we picked."""
        assert self._proc is not None
        started = time.monotonic()
        deadline = started + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self.log_tail()
                if "Address already in use" in tail and not (self._want_port and self._want_controller_port):
                    return False
                raise BrokerError(f"the broker exited with code {self._proc.returncode} while starting:\n{tail}")
            if _accepts(self.port):
                with quiet_logger("aiokafka"):
                    ok = asyncio.run(_answers(f"{HOST}:{self.port}", self._cluster_id(), timeout=5.0))
                if ok:
                    self._say(f"broker answering on {HOST}:{self.port} after {time.monotonic() - started:.1f} s")
                    return True
            time.sleep(0.25)
        raise BrokerError(
            f"the broker did not answer on {HOST}:{self.port} within {self.start_timeout:.0f} s:\n{self.log_tail()}"
        )

    def _reap(self) -> None:
        """Terminate the process group while its leader is still unreaped (so the group id is ours)."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT)
                except BaseException:  # too slow, or a second Ctrl-C: no mercy
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                        raise
                    self._say(f"the broker ignored SIGTERM for {STOP_TIMEOUT:.0f} s and was killed")
        finally:
            if self._out is not None:
                self._out.close()  # type: ignore[attr-defined]
                self._out = None
