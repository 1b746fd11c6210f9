"""A throwaway real PostgreSQL server for tests (Debian's postgresql package, no mocks).

`running_postgres()` runs initdb into a fresh directory, starts the server on a unix socket in
that directory plus 127.0.0.1 on a free port (trust authentication), creates a database, and
always stops the server and removes the directory afterwards. initdb refuses to run as root, so
as root the server runs as the `postgres` user that the Debian package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.peers import free_port, missing

__all__ = ["PostgresServer", "find_postgres_bin", "running_postgres"]

SUPERUSER = "postgres"
_START_ATTEMPTS = 3  # a free port can be taken by someone else before the server binds it


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    version = bin_dir.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def find_postgres_bin() -> Path:
    """The bin folder of the newest installed PostgreSQL server (skips or fails if none)."""
    candidates = [
        Path(initdb).parent
        for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb")
        if (Path(initdb).parent / "pg_ctl").is_file()
    ]
    if not candidates:
        missing("PostgreSQL server")
    return max(candidates, key=_version_key)


@dataclass(frozen=True)
class PostgresServer:
    """A running server; `url` names the database created at start."""

    bin_dir: Path
    socket_dir: Path
    port: int
    database: str

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        """SQLAlchemy URL (psycopg 3) for `database` over TCP on 127.0.0.1."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def socket_url_for(self, database: str) -> str:
        """SQLAlchemy URL for `database` over the unix socket."""
        return (
            f"postgresql+psycopg://{SUPERUSER}@/{database}?host={self.socket_dir}&port={self.port}"
        )

    def create_schema(self, name: str | None = None) -> str:
        """Create an empty schema in `database`; the URL returned puts it first on the
        search_path. Isolates a test in about a millisecond (CREATE DATABASE takes ~0.3 s)."""
        schema = name or f"dn_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                f"--dbname={self.database}",
                "--no-password",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                f"--command=CREATE SCHEMA {schema}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return f"{self.url}?options=-csearch_path%3D{schema}"

    def create_database(self, name: str | None = None) -> str:
        """Create a fresh, empty database and return its URL."""
        database = name or f"dn_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                str(self.bin_dir / "createdb"),
                "--host=127.0.0.1",
                f"--port={self.port}",
                f"--username={SUPERUSER}",
                "--no-password",
                database,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return self.url_for(database)


def _traversable_by_others(path: Path) -> bool:
    """Whether every folder from / down to `path` lets other users pass through."""
    return all(folder.stat().st_mode & stat.S_IXOTH for folder in [path, *path.parents])


def _make_base_dir(owner: pwd.struct_passwd | None) -> Path:
    parent = Path(tempfile.gettempdir()).resolve()
    if owner is not None and not _traversable_by_others(parent):
        parent = Path("/tmp")  # TMPDIR is private to root; the server user cannot reach it
    base = Path(tempfile.mkdtemp(prefix="dn-pg-", dir=parent))
    base.chmod(0o755)
    if owner is not None:
        os.chown(base, owner.pw_uid, owner.pw_gid)
    return base


def _run(command: list[str], *, as_user: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*as_user, *command], cwd=cwd, capture_output=True, text=True, check=False
    )


def _log_tail(log: Path) -> str:
    try:
        return log.read_text(encoding="utf-8", errors="replace")[-4000:]
    except OSError:
        return ""


@contextmanager
def running_postgres(database: str = "dicom_node") -> Iterator[PostgresServer]:
    """Start a throwaway server with an empty `database`; stop it and delete it on exit."""
    bin_dir = find_postgres_bin()
    owner: pwd.struct_passwd | None = None
    as_user: list[str] = []
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam(SUPERUSER)
        except KeyError:
            missing(f"PostgreSQL server (user {SUPERUSER!r} to run it as)")
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if runuser is None:
            missing("runuser (to run PostgreSQL as a non-root user)")
        as_user = [str(runuser), "-u", SUPERUSER, "--"]

    base = _make_base_dir(owner)
    data = base / "data"
    log = base / "server.log"
    pg_ctl = str(bin_dir / "pg_ctl")
    started = False
    try:
        initdb = _run(
            [
                str(bin_dir / "initdb"),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            as_user=as_user,
            cwd=base,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")

        port = 0
        for _attempt in range(_START_ATTEMPTS):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base}"
                " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            start = _run(
                [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
                as_user=as_user,
                cwd=base,
            )
            if start.returncode == 0:
                started = True
                break
            # A timed-out start may have left a server behind: make sure none runs on `data`.
            _run(
                [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                as_user=as_user,
                cwd=base,
            )
        if not started:
            raise RuntimeError(
                f"pg_ctl start failed:\n{start.stdout}\n{start.stderr}\n{_log_tail(log)}"
            )

        server = PostgresServer(bin_dir=bin_dir, socket_dir=base, port=port, database=database)
        server.create_database(database)
        yield server
    finally:
        if started:
            stop = _run(
                [pg_ctl, "-D", str(data), "-m", "fast", "-w", "-t", "60", "stop"],
                as_user=as_user,
                cwd=base,
            )
            if stop.returncode != 0:
                _run(
                    [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
                    as_user=as_user,
                    cwd=base,
                )
        shutil.rmtree(base, ignore_errors=True)
