# -*- test-case-name: tests.rest.test_credentials -*-
"""
The REST Basic-auth credentials a server starts with: never a published password on a listener
other hosts can reach.

An operator who sets C{rest_password} gets it (a published one such as C{admin} is refused by
L{wcs_twisted.config.Settings.check} unless the server binds loopback only).  Without one, a
loopback-only server keeps C{admin} so that C{make run} and the README's curl lines work on a
developer's machine; any other server generates a random password at first start, keeps it in
C{<state_dir>/rest-password} (mode 0600, so a restart keeps it and only the server's user reads
it) and logs where it is, never the password itself.  Generating beats refusing to start: a fresh
container or VM comes up usable and safe, and the operator reads the file once.
"""

from __future__ import annotations

import os
import secrets
import stat

from twisted.logger import Logger

from wcs_twisted.config import PUBLISHED_PASSWORDS, ConfigError, Settings

__all__ = ["LOOPBACK_PASSWORD", "PASSWORD_FILE", "published_login", "rest_credentials"]

log = Logger()

#: The file under state_dir holding a generated password.
PASSWORD_FILE = "rest-password"

#: The password of a server that binds loopback only and sets none.
LOOPBACK_PASSWORD = "admin"


def rest_credentials(settings: Settings) -> tuple[str, str] | None:
    """
    The (user, password) REST requests must send, or None when auth is disabled.

    @raise ConfigError: the password file cannot be written or read, is readable by other users,
        or holds a published password.
    """
    if settings.disable_rest_auth:
        if not settings.loopback_only:
            log.warn("disable_rest_auth=true: anyone who reaches ip_local={address} may use the "
                     "REST API", address=settings.bind_address or "(any)")
        return None
    if settings.rest_password:
        return settings.rest_username, settings.rest_password
    if settings.loopback_only:
        return settings.rest_username, LOOPBACK_PASSWORD
    return settings.rest_username, _stored_password(settings.state_dir, settings.rest_username)


def published_login(settings: Settings) -> bool:
    """
    Whether anyone may know the REST login (admin/admin, or none): then the server binds
    loopback only, and must also refuse host names that are not loopback (DNS rebinding).
    """
    return settings.disable_rest_auth or not settings.rest_password \
        or settings.rest_password in PUBLISHED_PASSWORDS


def _stored_password(state_dir: str, user: str) -> str:
    """
    The password in C{state_dir}/rest-password, generated and written first if there is none.
    """
    path = os.path.join(state_dir, PASSWORD_FILE)
    try:
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        password = _read_password(path)
        log.info("REST API user {user}: password in {path}", user=user, path=path)
        return password
    except OSError as error:
        raise ConfigError(f"state_dir={state_dir}: cannot create {path} ({error.strerror}): "
                          "expected a directory the server may write, or set rest_password") \
            from None
    password = secrets.token_urlsafe(18)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(password + "\n")
    log.warn("REST API user {user}: no rest_password set and ip_local is not loopback; "
             "generated a password into {path} (read it there; set rest_password to choose one)",
             user=user, path=path)
    return password


def _read_password(path: str) -> str:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, encoding="utf-8") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            text = handle.read().strip()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or "not UTF-8 text"
        raise ConfigError(f"cannot read the REST password in {path} ({reason}): expected a "
                          "file the server's user may read, or delete it to have one generated") \
            from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} is open to other users (mode {stat.S_IMODE(mode):04o}): "
                          f"expected mode 0600 (chmod 600 {path})")
    if not text or text in PUBLISHED_PASSWORDS:
        raise ConfigError(f"{path} holds no usable password: expected a secret of your own, "
                          "or delete it to have one generated")
    return text
