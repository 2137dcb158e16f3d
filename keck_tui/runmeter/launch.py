"""Starting CMD: forked first, exec'd when the measurement is ready.

``prepare()`` forks a child that sets its signal dispositions and credentials and
then waits on a pipe. Meanwhile the parent can put the child's PID into a
cgroup (so every descendant is born inside it) and prime its samplers;
``PendingLaunch.start()`` then lets the child exec CMD and reports, through a
close-on-exec status pipe, whether the exec worked. An exec that fails is a
:class:`LaunchError` with the shell's exit status: 127 for a command that does
not exist, 126 for one that exists but cannot be executed.

The child between fork and exec runs only a few system calls (no locks, no
imports), so forking is safe even when the parent has threads.

Under sudo (running as root with ``SUDO_UID``/``SUDO_GID`` set) CMD runs as the
invoking user with that user's supplementary groups, not as root.
"""
from __future__ import annotations

import errno
import os
import shutil
import signal
from dataclasses import dataclass
from typing import Mapping, Sequence

#: Exit statuses a shell uses for a command it could not start.
EXIT_NOT_FOUND = 127
EXIT_CANNOT_EXECUTE = 126

_GO = b"g"
#: Signals whose disposition the child gets back before exec (Python ignores SIGPIPE and
#: SIGXFSZ at start-up; keck-top ignores SIGINT/SIGQUIT while CMD runs).
RESTORED_SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in
                                     ("SIGINT", "SIGQUIT", "SIGPIPE", "SIGXFSZ", "SIGTERM", "SIGHUP"))
                         if s is not None)


class LaunchError(Exception):
    """CMD could not be started; ``exit_status`` is what a shell would return."""

    def __init__(self, message: str, exit_status: int) -> None:
        super().__init__(message)
        self.exit_status = exit_status


@dataclass(frozen=True)
class Credentials:
    """Who CMD runs as."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    user: str | None = None


def invoking_user(env: Mapping[str, str], euid: int | None = None) -> Credentials | None:
    """The user who ran ``sudo keck-top run …``, when keck-top is root because of sudo.

    None when not root, when ``SUDO_UID`` is absent or names root itself, or when the
    variables are not numbers (then CMD runs as keck-top does, and the caller says so).
    """
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return None
    try:
        uid = int(env["SUDO_UID"])
        gid = int(env.get("SUDO_GID", ""))
    except (KeyError, ValueError):
        return None
    if uid == 0 or uid < 0 or gid < 0:
        return None
    user = env.get("SUDO_USER") or None
    groups: list[int] = [gid]
    try:
        import pwd

        name = user or pwd.getpwuid(uid).pw_name
        if pwd.getpwnam(name).pw_uid == uid:
            user = name
            groups = os.getgrouplist(name, gid)
    except (KeyError, OSError, ImportError):
        pass  # a uid without a passwd entry: just its primary group
    return Credentials(uid=uid, gid=gid, groups=tuple(dict.fromkeys([gid, *groups])), user=user)


def original_dispositions() -> dict[int, int]:
    """The dispositions CMD should start with: SIG_IGN where keck-top was started with the
    signal ignored (``nohup``, a background job), else the default action."""
    out: dict[int, int] = {}
    for sig in RESTORED_SIGNALS:
        try:
            current = signal.getsignal(sig)
        except (ValueError, OSError):
            continue
        ignored = current == signal.SIG_IGN and sig not in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", -1))
        out[sig] = signal.SIG_IGN if ignored else signal.SIG_DFL
    return out


def resolve(argv0: str, env: Mapping[str, str]) -> str:
    """The file the child will exec, or LaunchError(127) when there is none.

    Only existence is checked here (fast feedback before any sampler starts);
    permission problems surface from the exec itself, as the target user.
    """
    if "/" in argv0:
        if not os.path.lexists(argv0):
            raise LaunchError(f"{argv0}: No such file or directory", EXIT_NOT_FOUND)
        return argv0
    path = env.get("PATH", os.defpath)
    found = shutil.which(argv0, path=path)
    if found is not None:
        return found
    for folder in path.split(os.pathsep):  # like a shell: a file that is there but not executable
        if os.path.isfile(os.path.join(folder or ".", argv0)):
            raise LaunchError(f"{argv0}: Permission denied", EXIT_CANNOT_EXECUTE)
    raise LaunchError(f"{argv0}: command not found", EXIT_NOT_FOUND)


class PendingLaunch:
    """A forked child waiting for :meth:`start` to exec CMD."""

    def __init__(self, pid: int, go_fd: int, status_fd: int, argv: Sequence[str]) -> None:
        self.pid = pid
        self.argv = tuple(argv)
        self._go = go_fd
        self._status = status_fd
        self.started = False

    def start(self) -> None:
        """Let the child exec CMD; raise LaunchError (the child reaped) when the exec fails."""
        try:
            os.write(self._go, _GO)
        except OSError:
            pass  # the child is gone already: its status pipe says why (or EOF)
        finally:
            os.close(self._go)
            self._go = -1
        try:
            chunks = []
            while True:
                chunk = os.read(self._status, 512)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(self._status)
            self._status = -1
        report = b"".join(chunks)
        if not report:
            self.started = True
            return
        _reap(self.pid)
        raise _error_from_report(report, self.argv[0])

    def abort(self) -> None:
        """Make the waiting child exit without running CMD (and reap it)."""
        for fd in (self._go, self._status):
            if fd >= 0:
                os.close(fd)
        self._go = self._status = -1
        if not self.started:
            _reap(self.pid)


def prepare(argv: Sequence[str], env: Mapping[str, str] | None = None,
            credentials: Credentials | None = None,
            dispositions: Mapping[int, int] | None = None) -> PendingLaunch:
    """Fork the child that will exec ``argv`` (see the module docstring)."""
    if not argv:
        raise LaunchError("no command given", EXIT_NOT_FOUND)
    env = dict(os.environ if env is None else env)
    path = resolve(argv[0], env)
    dispositions = dict(original_dispositions() if dispositions is None else dispositions)
    go_r, go_w = os.pipe()
    status_r, status_w = os.pipe()
    args = [str(a) for a in argv]
    env_b = {k.encode("utf-8", "surrogateescape"): v.encode("utf-8", "surrogateescape") for k, v in env.items()}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded fork": see the docstring
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its behaviour is tested end to end
        _child(go_r, go_w, status_r, status_w, path, args, env_b, credentials, dispositions)
    os.close(go_r)
    os.close(status_w)
    return PendingLaunch(pid, go_w, status_r, args)


def _child(go_r: int, go_w: int, status_r: int, status_w: int, path: str, argv: list[str],
           env: dict[bytes, bytes], credentials: Credentials | None,
           dispositions: Mapping[int, int]) -> None:  # pragma: no cover - runs in the child
    code = EXIT_CANNOT_EXECUTE
    try:
        os.close(go_w)
        os.close(status_r)
        for sig, disp in dispositions.items():
            signal.signal(sig, disp)
        stage = b"credentials"
        if credentials is not None:
            os.setgroups(list(credentials.groups))
            os.setgid(credentials.gid)
            os.setuid(credentials.uid)
        stage = b"wait"
        if os.read(go_r, 1) != _GO:
            os._exit(EXIT_CANNOT_EXECUTE)  # the parent gave up (or died): never run CMD
        os.close(go_r)
        stage = b"exec"
        os.execve(path, argv, env)
    except OSError as exc:
        code = EXIT_NOT_FOUND if exc.errno == errno.ENOENT and stage == b"exec" else EXIT_CANNOT_EXECUTE
        try:
            os.write(status_w, b"%s:%d" % (stage, exc.errno or 0))
        except OSError:
            pass
    except BaseException:  # noqa: BLE001 - never return into the parent's code
        pass
    os._exit(code)


def _error_from_report(report: bytes, argv0: str) -> LaunchError:
    stage, _, num = report.partition(b":")
    try:
        err = int(num)
    except ValueError:
        err = 0
    reason = os.strerror(err) if err else "unknown error"
    if stage == b"credentials":
        return LaunchError(f"cannot switch to the invoking user: {reason}", EXIT_CANNOT_EXECUTE)
    if err == errno.ENOENT:
        return LaunchError(f"{argv0}: {reason}", EXIT_NOT_FOUND)
    return LaunchError(f"{argv0}: {reason}", EXIT_CANNOT_EXECUTE)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def exit_status(wait_status: int) -> tuple[int, int | None]:
    """(exit status like a shell's ``$?``, terminating signal or None) from a wait status."""
    code = os.waitstatus_to_exitcode(wait_status)
    if code < 0:
        return 128 - code, -code
    return code, None
