"""The SFTP fixture itself: a pinned host key and the user key reach the server's files."""

from __future__ import annotations

import asyncssh

from sshd_server import Sshd


async def test_sftp_with_pinned_host_key(sshd: Sshd) -> None:
    (sshd.root / "hello.txt").write_text("hi")
    key = asyncssh.import_public_key(sshd.host_key)
    async with (
        asyncssh.connect(
            sshd.host,
            sshd.port,
            username=sshd.username,
            client_keys=[str(sshd.user_key)],
            known_hosts=([key], [], []),
        ) as conn,
        conn.start_sftp_client() as sftp,
    ):
        assert "hello.txt" in await sftp.listdir(str(sshd.root))
