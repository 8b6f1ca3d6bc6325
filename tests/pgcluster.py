"""A private PostgreSQL cluster a test can stop and start (the shared one of .ci/run must stay up).

Needs the server binaries (Debian's ``postgresql`` package: /usr/lib/postgresql/*/bin); run as
root, the cluster runs as the ``postgres`` user, since initdb refuses root.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: [int(x) for x in Path(p).parent.name.split(".")
                                                                            if x.isdigit()])
    return Path(found[-1]) if found and (Path(found[-1]) / "initdb").exists() else None


def why_not() -> str | None:
    """The reason a private cluster cannot run here, or None."""
    if pg_bin() is None:
        return "PostgreSQL server binaries not installed (apt install postgresql; .ci/run does)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start PostgreSQL as the postgres user"
    return None


class PgCluster:
    def __init__(self) -> None:
        self.bin = pg_bin()
        assert self.bin is not None, why_not()
        # not under pytest's tmp_path: its 0700 parent is closed to the postgres user
        self.dir = Path(tempfile.mkdtemp(prefix="plateread-pg-"))
        self.port = _free_port()
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "plateread", "-A", "trust", "-E", "UTF8")
        self.start()
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "plateread",
                        "reads"], check=True, capture_output=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://plateread@127.0.0.1:{self.port}/reads"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / tool), *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir}", "start")

    def stop(self, mode: str = "immediate") -> None:
        """``immediate``: as if the server crashed (connections cut, no clean shutdown)."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("fast")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
