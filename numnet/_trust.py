"""Whom numnet's compiled-code cache trusts: the folders and files it may load code from.

numba's cached code is a pickle, and unpickling runs whatever the file says. So whoever
can write a file numnet loads can run code as every user who loads it. A checksum proves
a file is whole, not who wrote it. The threat model, in one line: **only the user and
root can make numnet run code** (and, when the user opts in, the members of one group
the user names). numnet therefore loads compiled code only from:

- a cache root whose every folder, from ``/`` down, is owned by the user or root and
  cannot be written by anyone else (a folder others may write, such as /tmp, is allowed
  on the way only with its sticky bit, which keeps others from renaming what is in it),
  the root itself written by no one else even then;
- a tag folder inside it that is a real folder (not a symbolic link), owned by the user
  or root, written by no one else;
- files opened without following links (O_NOFOLLOW) and checked on the open file (fstat,
  so nothing can be swapped between the check and the read): regular files, owned by the
  user or root, written by no one else.

A folder that fails is passed over for the next candidate (numnet/_jit.py), or numnet
runs without a cache; a file that fails is a cache miss. Either way numnet says why in
one line on stderr, once per process. What numnet creates it creates private: folders
0700, files 0600.

**A team's shared cache** is an explicit opt-in: ``NUMNET_CACHE_TRUST_GROUP=<group name
or id>`` says "I trust every member of this group to run code as me". Then folders and
files of that group may be group-writable, may be owned by its members, and what numnet
creates there is shared with the group (folders 2770, files 0640, the lock 0660).
World-writable is never trusted.

Without POSIX ownership (Windows) only the symbolic-link rules apply.
"""

import errno
import functools
import os
import stat
import sys
import threading
from pathlib import Path

try:
    import grp
    import pwd
except ImportError:  # not on Windows, which has no POSIX owners (the rules above)
    grp = pwd = None

GROUP_VARIABLE = "NUMNET_CACHE_TRUST_GROUP"


class Untrusted(Exception):
    """A folder or file numnet will not load code from; the message says why."""


def _group_id():
    """The group named by NUMNET_CACHE_TRUST_GROUP, or None (no group is trusted)."""
    name = os.environ.get(GROUP_VARIABLE, "").strip()
    if not name or grp is None:
        return None
    try:
        return int(name) if name.isdigit() else grp.getgrnam(name).gr_gid
    except KeyError:
        raise Untrusted(f"{GROUP_VARIABLE}={name} names no group on this machine") from None


@functools.cache
def _is_member(uid, gid):
    """Whether user ``uid`` belongs to group ``gid`` (as its primary group or listed)."""
    try:
        user = pwd.getpwuid(uid)
        return user.pw_gid == gid or user.pw_name in grp.getgrgid(gid).gr_mem
    except KeyError:
        return False


class Policy:
    """Who may have written what numnet loads: this user, root, and (opt-in) a group."""

    def __init__(self):
        self.uid = os.geteuid() if hasattr(os, "geteuid") else None
        self.group = _group_id()

    @property
    def folder_mode(self):
        return 0o700 if self.group is None else 0o2770

    @property
    def file_mode(self):
        return 0o600 if self.group is None else 0o640

    @property
    def lock_mode(self):
        return 0o600 if self.group is None else 0o660

    def check(self, st, path, sticky_allowed=False):
        """Raise Untrusted unless ``st`` (an lstat or fstat of ``path``) is something only
        trusted users could have written."""
        if stat.S_ISLNK(st.st_mode):
            raise Untrusted(f"{path} is a symbolic link")
        if self.uid is None:  # no POSIX ownership to check
            return
        group_ok = self.group is not None and st.st_gid == self.group
        if st.st_uid not in (self.uid, 0) and not (group_ok and _is_member(st.st_uid, self.group)):
            raise Untrusted(f"{path} is owned by uid {st.st_uid}, not by you or root")
        if sticky_allowed and st.st_mode & stat.S_ISVTX:
            return
        if st.st_mode & stat.S_IWOTH:
            raise Untrusted(f"{path} is writable by every user (mode {stat.S_IMODE(st.st_mode):04o})")
        if st.st_mode & stat.S_IWGRP and not group_ok:
            raise Untrusted(
                f"{path} is writable by its group (mode {stat.S_IMODE(st.st_mode):04o}; "
                f"{GROUP_VARIABLE} opts in to a shared cache)"
            )

    def check_root(self, root, follow=False):
        """The cache root and every folder above it. Links above it are resolved first
        (only their folders' owners, checked here, could have made them); the root
        itself is followed only if ``follow`` (a folder the user named), not where numnet
        names it (anyone can make a link at a name in a shared temp folder)."""
        root = Path(root)
        real = Path(os.path.realpath(root if follow else root.parent))
        real = real if follow else real / root.name
        for above in reversed(real.parents):
            st = os.lstat(above)
            if not stat.S_ISDIR(st.st_mode):
                raise Untrusted(f"{above} is not a folder")
            self.check(st, above, sticky_allowed=True)
        self.check_folder(real)

    def check_folder(self, folder):
        st = os.lstat(folder)
        self.check(st, folder)
        if not stat.S_ISDIR(st.st_mode):
            raise Untrusted(f"{folder} is not a folder")

    def make_folder(self, folder):
        """Make ``folder`` (and missing folders above it) private, then check it: it may
        have existed already, made by someone else."""
        folder = Path(folder)
        missing = []
        while not os.path.lexists(folder):
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            try:
                os.mkdir(new, self.folder_mode)
            except FileExistsError:  # made meanwhile: the check below decides
                pass
            else:
                if self.group is not None:
                    os.chown(new, -1, self.group)
                    os.chmod(new, self.folder_mode)  # the umask may have taken the group bits

    def read(self, path):
        """The bytes of the file at ``path``, read only if it is trusted; FileNotFoundError
        if it is not there."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(path, flags)
        except OSError as e:
            if e.errno == errno.ELOOP:  # O_NOFOLLOW met a link
                raise Untrusted(f"{path} is a symbolic link") from None
            raise
        try:
            st = os.fstat(fd)
            self.check(st, path)
            if not stat.S_ISREG(st.st_mode):
                raise Untrusted(f"{path} is not a regular file")
            with os.fdopen(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def create(self, path, mode=None):
        """A new file at ``path`` (which must not exist), private: an open binary file."""
        mode = self.file_mode if mode is None else mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
        if self.group is not None:
            os.fchmod(fd, mode)
        return os.fdopen(fd, "wb")

    def open_lock(self, path):
        """The lock file at ``path``, made if missing, never through a link."""
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
        return os.fdopen(os.open(path, flags, self.lock_mode), "r+b")


_said = threading.Lock()
_said_already = []


def say_once(message):
    """One line on stderr, the first time this process has something to say."""
    with _said:
        if _said_already:
            return
        _said_already.append(message)
    print(f"numnet: {message}", file=sys.stderr)
