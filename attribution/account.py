"""The account the embedded stack's services run as, and who may read STACK_DIR.

Started by a normal user, every service runs as that user. Started as root (`sudo make run`, CI),
every service runs as the unprivileged system account SERVICE_ACCOUNT, made on first use, and
STACK_DIR belongs to it: nothing the stack starts runs as root. Either way STACK_DIR is private
(mode 0700), so its data, logs, sockets and settings are the account's (and root's) alone.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from functools import cache
from pathlib import Path

SERVICE_ACCOUNT = "checkout-attribution"


class AccountError(RuntimeError):
    """The service account could not be made."""


@cache
def service_user() -> pwd.struct_passwd | None:
    """The account services run as when it is not the caller (the caller is root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pass
    useradd = shutil.which("useradd")
    if useradd is None:
        raise AccountError(f"running as root, the services need the account {SERVICE_ACCOUNT}: no useradd")
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", SERVICE_ACCOUNT],
        check=True,
    )  # fmt: skip
    return pwd.getpwnam(SERVICE_ACCOUNT)


def require_runnable(executable: str) -> None:
    """As root: that the service account can run this program (the venv's Python)."""
    user = service_user()
    if user is None:
        return
    probe = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", executable, "-c", ""]
    if subprocess.run(["setpriv", *probe], capture_output=True).returncode != 0:
        raise AccountError(
            f"running as root, the services run as {user.pw_name}, which cannot run {executable}: make the "
            "venv from a python3.11 outside /root (`rm -rf .venv; make setup` picks one; Debian: "
            "apt-get install python3.11-venv), or run make as a normal user"
        )


def service_account_name() -> str | None:
    """The account's name for supervisord's `user` option; None: the caller's own."""
    user = service_user()
    return user.pw_name if user else None


def make_private(directory: Path) -> None:
    """STACK_DIR: made if missing, entered only by the service account (and root)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    hand_over(directory, recursive=False)


def hand_over(path: Path, recursive: bool = True) -> None:
    """What the caller wrote under STACK_DIR, made the service account's when the caller is root
    (the services read it; a directory's contents too)."""
    user = service_user()
    if user is None or not path.exists():
        return
    paths = [path, *path.rglob("*")] if recursive and path.is_dir() else [path]
    for each in paths:
        os.lchown(each, user.pw_uid, user.pw_gid)


def drop_privileges() -> None:
    """In a child process (preexec_fn): become the service account."""
    user = service_user()
    if user:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)
