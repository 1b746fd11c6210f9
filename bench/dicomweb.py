"""DICOMweb benchmark: STOW-RS and WADO-RS throughput of dicom-node against a real Orthanc
with its DICOMweb plugin (Debian orthanc-dicomweb), same machine, same data, same run.

Data: `--count` 512x512 16-bit CT slices (tests.support.phantom, ~525 KB each), written once.
For each target (started fresh, empty storage, on free 127.0.0.1 ports; both fsync what they
store: node storage.fsync true, Orthanc's default SyncStorageArea) and each number of clients
(1 and 4, `--clients`):

- stow: the instances in requests of `--per-request` instances (multipart/related;
  type="application/dicom"), the requests shared among the clients; every response must be
  200 and the target must then hold every instance;
- wado: every instance retrieved alone (GET .../instances/{uid}, multipart as stored), shared
  among the clients; every part is checked to be the full instance;
- frames: frame 1 of every instance (GET .../frames/1 with `transfer-syntax=*`, what OHIF
  asks), shared among the clients.
Times are wall clock from the first request to the last response. Throughput is instances/s
and MB/s of the files sent (1 MB = 10^6 bytes). Ratios are node/Orthanc (higher: node faster).

    cd /work/main && .venv/bin/python -m bench.dicomweb [--count 200] [--clients 1,4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import pydicom  # noqa: E402

from tests.support.node import NodeProcess, base_config, deep_merge  # noqa: E402
from tests.support.orthanc import OrthancProcess  # noqa: E402
from tests.support.phantom import write_ct_series  # noqa: E402

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
BOUNDARY = "bench-boundary-5f1e"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
FRAMES_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


@dataclass(frozen=True)
class Instance:
    path: Path
    study: str
    series: str
    sop: str
    size: int


class Target:
    name = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir

    def start(self) -> str:
        """Start; return the DICOMweb base URL (without trailing slash)."""
        raise NotImplementedError

    def count(self) -> int:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class Node(Target):
    name = "node"

    def start(self) -> str:
        config = deep_merge(base_config(self.workdir), {"storage": {"fsync": True}})
        self.process = NodeProcess(self.workdir, config).start(timeout_s=120)
        return f"{self.process.http_url}/dicomweb"

    def count(self) -> int:
        response = httpx.get(f"{self.process.http_url}/api/health", timeout=30)
        return int(response.json()["instances"])

    def stop(self) -> None:
        self.process.terminate()


class Orthanc(Target):
    name = "orthanc"

    def start(self) -> str:
        if not DICOMWEB_PLUGIN.exists():
            raise SystemExit(f"{DICOMWEB_PLUGIN} is missing (Debian package orthanc-dicomweb)")
        self.peer = OrthancProcess(
            self.workdir,
            settings={
                "Name": "bench",
                "StorageCompression": False,
                "Plugins": [str(DICOMWEB_PLUGIN)],
                "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            },
        ).start()
        return f"{self.peer.url}/dicom-web"

    def count(self) -> int:
        return int(self.peer.get("/statistics")["CountInstances"])

    def stop(self) -> None:
        self.peer.stop()


def _instances(files: Sequence[Path]) -> list[Instance]:
    result = []
    for path in files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        result.append(
            Instance(
                path,
                str(dataset.StudyInstanceUID),
                str(dataset.SeriesInstanceUID),
                str(dataset.SOPInstanceUID),
                path.stat().st_size,
            )
        )
    return result


def _body(instances: Sequence[Instance]) -> bytes:
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + item.path.read_bytes()
        + b"\r\n"
        for item in instances
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def _timed(jobs: Sequence[Any], clients: int, work: Callable[[httpx.Client, Any], None]) -> float:
    """Seconds to do `work` on every job, the jobs shared among `clients` threads."""
    shares = [jobs[index::clients] for index in range(clients)]

    def run(share: Sequence[Any]) -> None:
        with httpx.Client(timeout=300) as client:
            for job in share:
                work(client, job)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(run, share) for share in shares]:
            future.result()
    return time.perf_counter() - start


def _stow(base: str, bodies: Sequence[bytes], clients: int) -> float:
    def send(client: httpx.Client, body: bytes) -> None:
        response = client.post(f"{base}/studies", content=body, headers={"Content-Type": STOW_TYPE})
        if response.status_code != 200:
            raise RuntimeError(f"STOW-RS answered {response.status_code}: {response.text[:300]}")

    return _timed(bodies, clients, send)


def _url(base: str, item: Instance) -> str:
    return f"{base}/studies/{item.study}/series/{item.series}/instances/{item.sop}"


def _wado(base: str, instances: Sequence[Instance], clients: int) -> float:
    def fetch(client: httpx.Client, item: Instance) -> None:
        response = client.get(
            _url(base, item), headers={"Accept": 'multipart/related; type="application/dicom"'}
        )
        # The part is the whole PS3.10 file: at least the dataset that was sent.
        if response.status_code != 200 or len(response.content) < item.size - 1024:
            raise RuntimeError(f"WADO-RS answered {response.status_code}")

    return _timed(instances, clients, fetch)


def _frames(base: str, instances: Sequence[Instance], clients: int) -> float:
    def fetch(client: httpx.Client, item: Instance) -> None:
        response = client.get(_url(base, item) + "/frames/1", headers={"Accept": FRAMES_ACCEPT})
        if response.status_code != 200 or len(response.content) < 512 * 512 * 2:
            raise RuntimeError(f"frames answered {response.status_code}")

    return _timed(instances, clients, fetch)


def run_target(
    kind: type[Target], instances: Sequence[Instance], args: argparse.Namespace, scratch: Path
) -> dict[tuple[str, int], float]:
    batches = [
        instances[start : start + args.per_request]
        for start in range(0, len(instances), args.per_request)
    ]
    bodies = [_body(batch) for batch in batches]
    times: dict[tuple[str, int], float] = {}
    for clients in args.clients:
        target = kind(scratch / f"{kind.name}-{clients}")
        base = target.start()
        try:
            os.sync()
            times["stow", clients] = _stow(base, bodies, clients)
            held = target.count()
            if held != len(instances):
                raise RuntimeError(f"{kind.name} holds {held} of {len(instances)} instances")
            times["wado", clients] = _wado(base, instances, clients)
            times["frames", clients] = _frames(base, instances, clients)
        finally:
            target.stop()
    return times


def report(results: dict[str, dict[tuple[str, int], float]], instances: Sequence[Instance]) -> None:
    count = len(instances)
    megabytes = sum(item.size for item in instances) / 1e6
    print(f"{count} instances, {megabytes:.1f} MB ({megabytes / count * 1000:.0f} KB each)")
    keys = sorted(results["node"], key=lambda key: (key[0] != "stow", key[0], key[1]))
    for operation, clients in keys:
        line = f"  {operation:<6} {clients} client(s)"
        for name in ("node", "orthanc"):
            seconds = results[name][operation, clients]
            line += f"  {name} {count / seconds:7.1f} inst/s {megabytes / seconds:7.1f} MB/s"
        ratio = results["orthanc"][operation, clients] / results["node"][operation, clients]
        print(f"{line}  node/orthanc {ratio:5.2f}x")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument(
        "--clients", type=lambda text: [int(n) for n in text.split(",")], default=[1, 4]
    )
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="dicom-node-dicomweb-") as temp:
        scratch = Path(temp)
        instances = _instances(write_ct_series(scratch / "series", args.count))
        results = {
            kind.name: run_target(kind, instances, args, scratch) for kind in (Node, Orthanc)
        }
    report(results, instances)
    print(
        f"load average before {load:.2f}, after {os.getloadavg()[0]:.2f};"
        f" whole run {time.perf_counter() - started:.0f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
