"""Where the CLI finds its server and key: flags, then ATTAIN_* environment, then a config file.

The config file is TOML (default `~/.config/attain/config.toml`, or `--config` / ATTAIN_CONFIG):

    address = "127.0.0.1:50051"
    key = "atn_..."          # or key_file = "/run/secrets/attain-key"

`attain config set` writes it with mode 0600, because it holds a secret.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_ADDRESS = "127.0.0.1:50051"


def default_config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "attain" / "config.toml"


class ConfigError(Exception):
    """A config problem the user can fix; printed without a traceback."""


@dataclass
class Connection:
    address: str
    key: str | None
    config_path: Path

    def require_key(self) -> str:
        if not self.key:
            raise ConfigError(
                "no API key: pass --key, set ATTAIN_KEY, or run "
                "`attain config set --key ...` (see `attain --help`)"
            )
        return self.key


def load_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"address", "key", "key_file"}
    if unknown:
        raise ConfigError(f"{path}: unknown settings {', '.join(sorted(unknown))}")
    return {k: str(v) for k, v in data.items()}


def resolve(address: str | None, key: str | None, config: Path | None) -> Connection:
    path = config or Path(os.environ.get("ATTAIN_CONFIG") or default_config_path())
    stored = load_file(path)
    resolved_key = key or os.environ.get("ATTAIN_KEY") or stored.get("key")
    if not resolved_key and stored.get("key_file"):
        key_path = Path(stored["key_file"]).expanduser()
        try:
            resolved_key = key_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{path}: key_file {key_path}: {exc.strerror}") from None
    return Connection(
        address=address
        or os.environ.get("ATTAIN_ADDRESS")
        or stored.get("address")
        or DEFAULT_ADDRESS,
        key=resolved_key or None,
        config_path=path,
    )


def write(path: Path, values: dict[str, str]) -> None:
    """Writes settings (merged into what is there) with owner-only permissions."""
    current = load_file(path)
    current.update({k: v for k, v in values.items() if v})
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k} = {_toml_string(v)}\n" for k, v in sorted(current.items()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(path, 0o600)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
