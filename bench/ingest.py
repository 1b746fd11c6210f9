"""Ingest benchmark: C-STORE of real-size CT instances into dicom-node, Orthanc and storescp.

Every run starts its target afresh on free loopback ports with an empty storage folder, so all
`--count` instances are new to it (no run takes a duplicate path). The same phantom files are
sent to every target. dcmtk and Orthanc get TCP_NODELAY=1 in their environment (tuned
baselines); the node sets TCP_NODELAY on its own sockets.

    cd /work/main && .venv/bin/python -m bench.ingest [--count 300] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.node import NodeProcess, base_config, deep_merge  # noqa: E402
from tests.support.orthanc import ORTHANC_AE, OrthancProcess  # noqa: E402
from tests.support.phantom import write_ct_series  # noqa: E402

TARGETS = ("node", "orthanc", "storescp")
SCENARIOS = (1, 4)  # parallel associations
SEND_TIMEOUT_S = 600.0
START_TIMEOUT_S = 60.0
TUNED_ENV = dict(os.environ, TCP_NODELAY="1")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.load(response)


def stop_process(process: subprocess.Popen[Any] | None, timeout_s: float = 30.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class Target:
    """One server under test: start() returns its DIMSE port; count() the stored instances."""

    ae_title = "ANY-SCP"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.process: subprocess.Popen[Any] | None = None

    def start(self) -> int:
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def stop(self) -> None:
        stop_process(self.process)

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("*.log"))
        return logs[-1].read_text(errors="replace")[-2000:] if logs else ""


class Node(Target):
    ae_title = "DICOM_NODE"

    def start(self) -> int:
        config = deep_merge(base_config(self.workdir), {"storage": {"fsync": True}})
        self.node = NodeProcess(self.workdir, config).start(timeout_s=START_TIMEOUT_S)
        self.process = self.node.process
        return self.node.dimse_port

    def count(self) -> int:
        body = get_json(f"{self.node.http_url}/api/studies?limit=1000")
        return sum(int(study["instance_count"]) for study in body["studies"])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.node.terminate(timeout_s=30)
            except subprocess.TimeoutExpired:
                self.node.kill()


class Orthanc(Target):
    ae_title = ORTHANC_AE

    def start(self) -> int:
        self.peer = OrthancProcess(
            self.workdir, settings={"Name": "bench", "StorageCompression": False}
        ).start(timeout_s=START_TIMEOUT_S)
        self.process = self.peer.process
        return self.peer.dicom_port

    def count(self) -> int:
        return int(self.peer.get("/statistics")["CountInstances"])


class StoreScp(Target):
    ae_title = "STORESCP"

    def start(self) -> int:
        port = free_port()
        self.output = self.workdir / "storage"
        self.output.mkdir()
        with (self.workdir / "storescp.log").open("w") as log:
            command = ["storescp", "-aet", self.ae_title, "--output-directory", str(self.output)]
            self.process = subprocess.Popen(
                [*command, str(port)], stdout=log, stderr=subprocess.STDOUT, env=TUNED_ENV
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:  # C-ECHO until it answers
            echo = subprocess.run(
                ["echoscu", "-aec", self.ae_title, "127.0.0.1", str(port)],
                capture_output=True,
                timeout=10,
                env=TUNED_ENV,
            )
            if echo.returncode == 0:
                return port
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"storescp did not start: {echo.stderr.decode()[-500:]}")
            time.sleep(0.1)

    def count(self) -> int:
        return sum(1 for path in self.output.rglob("*") if path.is_file())


KINDS: dict[str, type[Target]] = {"node": Node, "orthanc": Orthanc, "storescp": StoreScp}


def send(files: list[Path], port: int, ae_title: str, parallel: int) -> float:
    """Run `parallel` storescu processes at once over `files`; return the wall time in s."""
    groups = [
        files[k * len(files) // parallel : (k + 1) * len(files) // parallel]
        for k in range(parallel)
    ]
    started = time.perf_counter()
    command = ["storescu", "-aet", "BENCH", "-aec", ae_title, "127.0.0.1", str(port)]
    senders = [
        subprocess.Popen(
            [*command, *map(str, group)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=TUNED_ENV,
        )
        for group in groups
    ]
    outputs = []
    try:
        for sender in senders:
            outputs.append(sender.communicate(timeout=SEND_TIMEOUT_S)[0].decode(errors="replace"))
    finally:
        for sender in senders:
            if sender.poll() is None:
                sender.kill()
                sender.wait()
    elapsed = time.perf_counter() - started
    for sender, output in zip(senders, outputs, strict=True):
        if sender.returncode != 0:
            raise RuntimeError(f"storescu exited {sender.returncode}: {output[-1000:]}")
    return elapsed


def run_once(kind: str, files: list[Path], parallel: int, scratch: Path) -> float:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-{parallel}-", dir=scratch))
    target = KINDS[kind](workdir)
    try:
        port = target.start()
        os.sync()  # no earlier run's dirty pages are flushed on this run's clock
        try:
            elapsed = send(files, port, target.ae_title, parallel)
            stored = target.count()
        except (RuntimeError, OSError) as exc:
            raise RuntimeError(f"{kind}: {exc}\n--- {kind} log ---\n{target.log_tail()}") from exc
        if stored != len(files):
            raise RuntimeError(f"{kind} holds {stored} of {len(files)} instances after the run")
        return elapsed
    finally:
        target.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def code_version() -> str:
    """The node code this run imports (`-m dicom_node` resolves from the working folder)."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return described.stdout.strip() or "not a git checkout"


def verdict(ratio: float, goal: float) -> str:
    return f"{'PASS' if ratio >= goal else 'MISS'} (target >= {goal:.1f}x)"


def report(times: dict[tuple[str, int], list[float]], count: int, total_bytes: int) -> None:
    megabytes = total_bytes / 1e6
    print(f"\n{count} instances, {megabytes:.1f} MB per run (MB = 10^6 bytes); median of runs")
    print(f"{'target':<9} {'assoc':>5} {'median s':>9} {'inst/s':>8} {'MB/s':>7}  runs (s)")
    medians: dict[tuple[str, int], float] = {}
    for (kind, parallel), runs in times.items():
        median = medians[kind, parallel] = statistics.median(runs)
        listed = " ".join(f"{run:.2f}" for run in runs)
        print(
            f"{kind:<9} {parallel:>5} {median:>9.2f} {count / median:>8.1f}"
            f" {megabytes / median:>7.1f}  {listed}"
        )
    goals = {1: 1.0, 4: 1.5}
    print("\nthroughput ratios (higher = node faster)")
    for parallel in SCENARIOS:
        node = medians.get(("node", parallel))
        if node is None:
            print("  (no node figures: add node to --targets)")
            break
        if ("orthanc", parallel) in medians:
            ratio = medians["orthanc", parallel] / node
            print(
                f"  {parallel} assoc  node/Orthanc  {ratio:5.2f}x  "
                f"{verdict(ratio, goals[parallel])}"
            )
        if ("storescp", parallel) in medians:
            ratio = medians["storescp", parallel] / node
            print(f"  {parallel} assoc  node/storescp {ratio:5.2f}x  (distance to the limit)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=300, help="instances per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target and scenario")
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the raw timings here")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.targets.split(",") if kind.strip()]
    unknown = set(kinds) - set(TARGETS)
    if unknown or args.count < 4 or args.repeat < 1:
        parser.error(f"targets from {TARGETS}, --count >= 4, --repeat >= 1 (unknown: {unknown})")
    scratch = Path(tempfile.mkdtemp(prefix="dicom-node-bench-"))
    try:
        started = time.perf_counter()
        files = write_ct_series(scratch / "data", args.count)
        total_bytes = sum(path.stat().st_size for path in files)
        print(f"node code: {Path.cwd()} ({code_version()})")
        print(f"generated {len(files)} CT files in {time.perf_counter() - started:.1f}s")
        times: dict[tuple[str, int], list[float]] = {
            (kind, parallel): [] for kind in kinds for parallel in SCENARIOS
        }
        for repeat in range(args.repeat):  # interleaved so that drift hits every target alike
            for parallel in SCENARIOS:
                for kind in kinds:
                    elapsed = run_once(kind, files, parallel, scratch)
                    times[kind, parallel].append(elapsed)
                    print(
                        f"run {repeat + 1}/{args.repeat} {kind:<9} {parallel} assoc:"
                        f" {elapsed:6.2f}s {args.count / elapsed:7.1f} inst/s",
                        flush=True,
                    )
        report(times, args.count, total_bytes)
        if args.json:
            raw = {f"{kind}/{parallel}": runs for (kind, parallel), runs in times.items()}
            args.json.write_text(json.dumps({"count": args.count, "seconds": raw}, indent=2))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
