"""SFTP settings and file imports: protobuf to use-case types and back (the credential goes
in only: what comes out is its kind and fingerprint)."""

from __future__ import annotations

from attain.v1 import targets_pb2 as tpb
from attain_server.application.imports import FileImport
from attain_server.application.sftp_credentials import PASSWORD, PRIVATE_KEY, NewCredential
from attain_server.application.sftp_settings import SftpSettings

from .mapping import timestamp

_IMPORT_STATE_TO_PROTO = {
    "RUNNING": tpb.IMPORT_STATE_RUNNING,
    "DONE": tpb.IMPORT_STATE_DONE,
    "FAILED": tpb.IMPORT_STATE_FAILED,
}
_FILE_KIND_TO_PROTO = {
    "TARGET_VALUES": tpb.FILE_KIND_TARGET_VALUES,
    "TRANSACTIONS": tpb.FILE_KIND_TRANSACTIONS,
}


_CREDENTIAL_KIND_TO_PROTO = {
    PASSWORD: tpb.SFTP_CREDENTIAL_KIND_PASSWORD,
    PRIVATE_KEY: tpb.SFTP_CREDENTIAL_KIND_PRIVATE_KEY,
}


def sftp_to_proto(cfg: SftpSettings) -> tpb.SftpSettings:
    """The settings as shown: the credential's kind and fingerprint, never the secret."""
    stored = cfg.credential
    info = tpb.SftpCredentialInfo()
    if stored is not None:
        info = tpb.SftpCredentialInfo(
            kind=_CREDENTIAL_KIND_TO_PROTO.get(stored.kind, tpb.SFTP_CREDENTIAL_KIND_UNSPECIFIED),
            public_key_fingerprint=stored.fingerprint,
        )
    return tpb.SftpSettings(
        enabled=cfg.enabled,
        host=cfg.host,
        port=cfg.port,
        username=cfg.username,
        host_key=cfg.host_key,
        targets_folder=cfg.targets_folder,
        transactions_folder=cfg.transactions_folder,
        processed_folder=cfg.processed_folder,
        failed_folder=cfg.failed_folder,
        poll_interval_seconds=cfg.poll_interval_seconds,
        credential_info=info,
    )


def sftp_from_proto(msg: tpb.SftpSettings) -> tuple[SftpSettings, NewCredential | None]:
    """The settings and, when the request carries one, the new credential."""
    settings = SftpSettings(
        host=msg.host,
        port=msg.port or 22,
        username=msg.username,
        host_key=msg.host_key.strip(),
        processed_folder=msg.processed_folder,
        failed_folder=msg.failed_folder,
        targets_folder=msg.targets_folder,
        transactions_folder=msg.transactions_folder,
        poll_interval_seconds=msg.poll_interval_seconds or 60,
        enabled=msg.enabled,
    )
    if not msg.HasField("credential"):
        return settings, None
    given = msg.credential
    which = given.WhichOneof("secret")
    return settings, NewCredential(
        password=given.password if which == "password" else None,
        private_key=given.private_key if which == "private_key" else None,
        passphrase=given.passphrase,
    )


def import_to_proto(r: FileImport) -> tpb.FileImport:
    return tpb.FileImport(
        id=r.id,
        kind=_FILE_KIND_TO_PROTO[r.kind],
        file_name=r.file_name,
        content_sha256=r.content_sha256,
        state=_IMPORT_STATE_TO_PROTO[r.state],
        rows_read=r.rows_read,
        rows_accepted=r.rows_accepted,
        rows_duplicate=r.rows_duplicate,
        rows_refused=r.rows_refused,
        error_report=r.error_report,
        failure_reason=r.failure_reason,
        start_time=timestamp(r.start_time),
        finish_time=timestamp(r.finish_time),
    )
