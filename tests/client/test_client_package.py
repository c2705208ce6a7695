"""The Python client is a package of its own: its wheel carries the generated code, the type
stubs and AttainClient, and depends on neither the server nor the CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_wheel_stands_alone(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT / "clients" / "python"),
        ],
        check=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("attain_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    for expected in (
        "attain/v1/progress_pb2.py",
        "attain/v1/progress_pb2.pyi",
        "attain/v1/progress_pb2_grpc.pyi",
        "attain/v1/py.typed",
        "attain_client/client.py",
        "attain_client/errors.py",
        "attain_client/py.typed",
    ):
        assert expected in names, f"{expected} missing from {wheel.name}"
    assert not any(n.startswith(("attain_server/", "attain_cli/", "attain_worker/")) for n in names)
    requires = " ".join(metadata.get_all("Requires-Dist") or [])
    assert "grpcio" in requires and "protobuf" in requires
    assert "sqlmodel" not in requires and "typer" not in requires
