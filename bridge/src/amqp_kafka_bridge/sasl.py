"""Cyrus SASL for the listener: the configuration proton hands to Cyrus, and a command to manage users.

Proton (built with Cyrus, ``proton.SASL.extended()``) reads ``<dir>/<name>.conf``. Either the
operator points ``sasl_config_dir``/``sasl_config_name`` at their own (any Cyrus backend:
sasldb, saslauthd, LDAP), or the bridge writes one into a private temporary directory from
``sasl_db_file`` (a sasldb made with ``saslpasswd2``) and ``sasl_mechanisms``.

Users of a sasldb::

    python -m amqp_kafka_bridge.sasl add-user --db /etc/bridge/users.sasldb alice   # asks for the password
    python -m amqp_kafka_bridge.sasl delete-user --db /etc/bridge/users.sasldb alice
    python -m amqp_kafka_bridge.sasl list-users --db /etc/bridge/users.sasldb

(``saslpasswd2 -c -f DB USER`` does the same.) Cyrus keys users by realm, by default the
host's name, the same for ``saslpasswd2`` and the bridge on one host; in a container give the
bridge a fixed hostname, or pass ``--realm`` here and have clients log in as ``user@realm``.
"""

from __future__ import annotations

import argparse
import getpass
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import proton

APP_NAME = "amqp-kafka-bridge"


@dataclass(frozen=True)
class CyrusConfig:
    """Where proton's Cyrus integration finds ``<name>.conf``; ``owned`` when the bridge wrote it (removed on close)."""

    directory: Path
    name: str
    owned: bool = False

    def close(self) -> None:
        if self.owned:
            shutil.rmtree(self.directory, ignore_errors=True)


def cyrus_available() -> bool:
    return proton.SASL.extended()


def write_config(sasl_db_file: Path | None) -> CyrusConfig:
    """A private config directory for ``sasl_db_file`` (mode 0700, removed by ``close``).

    No ``mech_list``: each transport's ``allowed_mechs`` restricts what is offered.
    """
    directory = Path(tempfile.mkdtemp(prefix="bridge-sasl-"))
    lines = ["pwcheck_method: auxprop", "auxprop_plugin: sasldb"]
    if sasl_db_file is not None:
        lines.append(f"sasldb_path: {Path(sasl_db_file).resolve()}")
    (directory / f"{APP_NAME}.conf").write_text("\n".join(lines) + "\n")
    return CyrusConfig(directory, APP_NAME, owned=True)


# Proton initialises Cyrus once per process, from the first configuration any transport names;
# later ones are silently ignored. Remember what this process was initialised for.
_process_backend: tuple[str, str | None] | None = None


def cyrus_config(
    mechanisms: Sequence[str], sasl_db_file: Path | None, config_dir: Path | None, config_name: str | None
) -> CyrusConfig:
    """The operator's own configuration if given, else one written for ``sasl_db_file``.

    Raises RuntimeError when this process already serves another user backend: Cyrus cannot
    switch (run each such bridge in its own process).
    """
    global _process_backend
    backend = (
        ("config", f"{Path(config_dir).resolve()}/{config_name}")
        if config_dir is not None
        else ("sasldb", str(Path(sasl_db_file).resolve()) if sasl_db_file is not None else None)
    )
    needs_users = bool(set(mechanisms) - {"ANONYMOUS", "EXTERNAL"})
    if _process_backend is not None and needs_users and _process_backend != backend:
        raise RuntimeError(
            f"Cyrus SASL in this process already serves {_process_backend[1] or 'no user database'}; "
            "it is configured once per process: run this bridge in a process of its own"
        )
    if _process_backend is None:
        _process_backend = backend
    if config_dir is not None:
        return CyrusConfig(Path(config_dir), config_name or APP_NAME)
    return write_config(sasl_db_file)


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None)
    if path is None:
        raise SystemExit(f"{name} not found: install Cyrus SASL's tools (Debian: apt-get install sasl2-bin)")
    return path


def add_user(db: Path, user: str, password: str, realm: str | None = None) -> None:
    """Create or update ``user`` in the sasldb ``db`` (the password goes to saslpasswd2 on stdin, never argv)."""
    cmd = [_tool("saslpasswd2"), "-p", "-c", "-f", str(db), *(["-u", realm] if realm else []), user]
    done = subprocess.run(cmd, input=password.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"saslpasswd2 could not add {user} to {db}: {done.stderr.decode().strip()}")


def delete_user(db: Path, user: str, realm: str | None = None) -> None:
    cmd = [_tool("saslpasswd2"), "-d", "-f", str(db), *(["-u", realm] if realm else []), user]
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"saslpasswd2 could not delete {user} from {db}: {done.stderr.decode().strip()}")


def list_users(db: Path) -> list[str]:
    done = subprocess.run([_tool("sasldblistusers2"), "-f", str(db)], capture_output=True, check=False, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read {db}: {done.stderr.strip()}")
    return sorted({line.split(":", 1)[0] for line in done.stdout.splitlines() if ":" in line})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m amqp_kafka_bridge.sasl", description="Manage the bridge's SASL users")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("add-user", "delete-user", "list-users"):
        cmd = sub.add_parser(name)
        cmd.add_argument("--db", type=Path, required=True, help="the sasldb file (the bridge's sasl_db_file)")
        if name != "list-users":
            cmd.add_argument("user")
            cmd.add_argument("--realm", help="Cyrus realm (default: this host's name, as the bridge uses)")
        if name == "add-user":
            cmd.add_argument("--password-stdin", action="store_true", help="read the password from stdin, not a prompt")
    args = parser.parse_args(argv)
    try:
        if args.command == "add-user":
            password = (
                sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"password for {args.user}: ")
            )
            if not password:
                print("empty password refused", file=sys.stderr)
                return 2
            add_user(args.db, args.user, password, args.realm)
        elif args.command == "delete-user":
            delete_user(args.db, args.user, args.realm)
        else:
            print("\n".join(list_users(args.db)))
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
