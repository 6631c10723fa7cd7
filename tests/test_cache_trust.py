"""The compiled-code cache against another user (numnet/_trust.py says why): the attack
of planting pickles that run a command when numnet loads them, tried on every kind of
folder or file someone else could have written.

Each test plants a payload in a cache folder numnet filled itself (every data file, its
checksum rewritten to match, and/or every index file), makes the folder untrusted in one
way, and runs a victim process that calls ``numnet.sigmoid``: the result must be right,
the payload must not have run (it would create a file), and stderr must say once why the
folder was passed over. ``test_the_payload_runs_from_a_trusted_folder`` is the control:
the same payload in a folder numnet trusts does run, so these tests can fail.

Changing a folder's owner to someone else needs root (CI runs as root): those tests skip
with the reason elsewhere. Group- and world-writable folders and files, and symbolic
links, are tried by any user.
"""

import hashlib
import os
import pickle
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import numnet
from numnet import _jit

PACKAGE = Path(numnet.__file__).resolve().parent
OTHER_UID = 54321  # an account that is not this user and not root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a folder to another user (chown)")

VICTIM = """
import numpy as np, numnet
print(numnet.sigmoid(np.zeros(3, np.float32)))
"""
RIGHT = "[0.5 0.5 0.5]\n"


def environment(**variables):
    """A victim's environment: no cache variable of its own unless given, this numnet."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NUMNET_CACHE_DIR", "NUMBA_CACHE_DIR", "NUMNET_CACHE", "NUMNET_CACHE_TRUST_GROUP")
    }
    path = os.pathsep.join([str(PACKAGE.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**env, "PYTHONPATH": path, **variables}


def victim(**variables):
    """The victim's run, its stderr less numnet's line saying it is compiling."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(VICTIM)],
        env=environment(**variables),
        capture_output=True,
        text=True,
        timeout=300,
    )
    proc.stderr = "".join(
        line
        for line in proc.stderr.splitlines(keepends=True)
        if not line.startswith("numnet: compiling numnet's kernels")
    )
    return proc


class Payload:
    """A pickle that runs a shell command when it is loaded."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def plant(cache, marker, data=True, index=True):
    """Replace what numnet would unpickle in ``cache`` with the payload, as an attacker
    with write access would: data and index files keep numnet's header with a fresh
    SHA-256 (a checksum, not a signature: anyone who can write the file can make one)."""
    evil = pickle.dumps(Payload(f"touch {marker}"))
    planted = 0
    for path in cache.rglob("*"):
        if (data and path.suffix == ".nbc") or (index and path.suffix == ".nbi"):
            blob = path.read_bytes()
            magic = blob[: blob.index(b"\n") + 1]
            path.write_bytes(magic + hashlib.sha256(evil).digest() + evil)
            planted += 1
    assert planted, f"nothing to plant in {cache}"


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache folder numnet filled while computing the victim's sigmoid."""
    cache = tmp_path_factory.mktemp("filled") / "cache"
    proc = victim(NUMNET_CACHE_DIR=str(cache))
    assert proc.returncode == 0 and proc.stdout == RIGHT, proc.stderr
    assert list(cache.rglob("*.nbc")), "the victim's run saved nothing"
    return cache


def copy_of(filled, where):
    shutil.copytree(filled, where, symlinks=True)
    return where


def tag_folder(cache):
    return cache / _jit.CACHE_TAG


def assert_passed_over(proc, marker, why):
    """The victim ran right, the payload did not, and stderr said why in one line."""
    assert proc.returncode == 0 and proc.stdout == RIGHT, proc.stdout + proc.stderr
    assert not marker.exists(), "the planted payload ran"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("numnet:") and why in lines[0], proc.stderr


def test_the_payload_runs_from_a_trusted_folder(filled, tmp_path):
    """The control: planted in a folder numnet trusts (the user's own), the payload runs;
    so each test below fails if numnet loads what it should not."""
    for data, index in [(True, False), (False, True)]:
        cache = copy_of(filled, tmp_path / f"cache-{data}-{index}")
        marker = tmp_path / f"ran-{data}-{index}"
        plant(cache, marker, data=data, index=index)
        victim(NUMNET_CACHE_DIR=str(cache))
        assert marker.exists(), f"the payload did not run (data={data}, index={index})"


@needs_root
def test_a_folder_owned_by_another_user(filled, tmp_path):
    """The issue's attack: someone else's folder, filled and planted, world-writable."""
    cache = copy_of(filled, tmp_path / "numnet-cache-root")
    plant(cache, tmp_path / "ran")
    for path in [cache, *cache.rglob("*")]:
        os.lchown(path, OTHER_UID, OTHER_UID)
    cache.chmod(0o777)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", f"owned by uid {OTHER_UID}")


@needs_root
def test_files_owned_by_another_user_in_the_users_folder(filled, tmp_path):
    cache = copy_of(filled, tmp_path / "cache")
    plant(cache, tmp_path / "ran")
    for path in tag_folder(cache).iterdir():
        os.lchown(path, OTHER_UID, OTHER_UID)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", f"owned by uid {OTHER_UID}")


@pytest.mark.parametrize("bits, why", [(0o070, "writable by its group"), (0o007, "writable by every user")])
@pytest.mark.parametrize("which", ["root", "tag"])
def test_a_folder_others_can_write(filled, tmp_path, which, bits, why):
    cache = copy_of(filled, tmp_path / "cache")
    plant(cache, tmp_path / "ran")
    folder = cache if which == "root" else tag_folder(cache)
    folder.chmod(0o700 | bits)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", why)


@pytest.mark.parametrize("data, index", [(True, False), (False, True)], ids=["data", "index"])
def test_a_file_others_can_write(filled, tmp_path, data, index):
    """Every data file (or every index) planted and left writable by every user, in the
    user's own private folders: each file is checked, not only its folder."""
    cache = copy_of(filled, tmp_path / "cache")
    plant(cache, tmp_path / "ran", data=data, index=index)
    for path in tag_folder(cache).iterdir():
        path.chmod(0o666)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", "writable by every user")


def test_a_symlinked_tag_folder(filled, tmp_path):
    """The tag folder is numnet's to make: a symbolic link there may point anywhere."""
    cache = copy_of(filled, tmp_path / "cache")
    plant(cache, tmp_path / "ran")
    elsewhere = tmp_path / "elsewhere"
    tag_folder(cache).rename(elsewhere)
    tag_folder(cache).symlink_to(elsewhere)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", "symbolic link")


def test_a_symlinked_data_file(filled, tmp_path):
    cache = copy_of(filled, tmp_path / "cache")
    plant(cache, tmp_path / "ran", index=False)
    for path in tag_folder(cache).glob("*.nbc"):
        target = tmp_path / path.name
        path.rename(target)
        path.symlink_to(target)
    assert_passed_over(victim(NUMNET_CACHE_DIR=str(cache)), tmp_path / "ran", "symbolic link")


def fallback_only(tmp_path):
    """A victim whose home cannot be written and who set no cache variable: numnet's
    last candidate is its folder in the temp directory (TMPDIR here)."""
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    blocker = tmp_path / "a-file"
    blocker.touch()
    return temp, {"TMPDIR": str(temp), "XDG_CACHE_HOME": str(blocker / "cache"), "HOME": str(blocker)}


@needs_root
def test_the_temp_fallback_made_by_another_user(filled, tmp_path):
    temp, variables = fallback_only(tmp_path)
    squatted = copy_of(filled, temp / f"numnet-cache-{os.getuid()}")
    plant(squatted, tmp_path / "ran")
    for path in [squatted, *squatted.rglob("*")]:
        os.lchown(path, OTHER_UID, OTHER_UID)
    proc = victim(**variables)
    assert_passed_over(proc, tmp_path / "ran", f"owned by uid {OTHER_UID}")
    assert "without a compiled-code cache" in proc.stderr


def test_the_temp_fallback_is_made_private(tmp_path):
    """Made by numnet: 0700, and files 0600; a second process uses it (nothing said)."""
    temp, variables = fallback_only(tmp_path)
    for _ in range(2):
        proc = victim(**variables)
        assert proc.returncode == 0 and proc.stdout == RIGHT and proc.stderr == "", proc.stderr
    folder = temp / f"numnet-cache-{os.getuid()}"
    assert stat.S_IMODE(folder.lstat().st_mode) == 0o700
    assert stat.S_IMODE(tag_folder(folder).lstat().st_mode) == 0o700
    files = list(tag_folder(folder).iterdir())
    assert files and all(stat.S_IMODE(f.lstat().st_mode) == 0o600 for f in files), [
        (f.name, oct(f.lstat().st_mode)) for f in files
    ]


def test_a_symlinked_temp_fallback(tmp_path):
    """Someone else's link at the fallback's name (in a shared temp folder anyone can
    make one) is not followed, even to a folder of the user's own."""
    temp, variables = fallback_only(tmp_path)
    (tmp_path / "target").mkdir(mode=0o700)
    (temp / f"numnet-cache-{os.getuid()}").symlink_to(tmp_path / "target")
    assert_passed_over(victim(**variables), tmp_path / "ran", "symbolic link")


def test_numnet_cache_shows_the_trust(tmp_path):
    env = environment(NUMNET_CACHE_DIR=str(tmp_path / "mine"))
    shown = subprocess.run([sys.executable, "-m", "numnet", "cache"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "mode 0700" in shown.stdout and "trusted" in shown.stdout, shown.stdout
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o777)
    env = environment(NUMNET_CACHE_DIR=str(tmp_path / "open"), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    shown = subprocess.run([sys.executable, "-m", "numnet", "cache"], env=env, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert "passed over" in shown.stdout and "writable by every user" in shown.stdout, shown.stdout
    assert str(tmp_path / "xdg" / "numnet") in shown.stdout


def test_a_shared_group_folder_only_by_opt_in(tmp_path):
    """A team cache: a folder its group may write is used only when the user names that
    group in NUMNET_CACHE_TRUST_GROUP (trusting its members to run code as the user)."""
    team = tmp_path / "team"
    team.mkdir()
    team.chmod(0o2770)
    group = team.stat().st_gid
    refused = victim(NUMNET_CACHE_DIR=str(team), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    assert refused.returncode == 0 and "writable by its group" in refused.stderr, refused.stderr
    assert not any(team.iterdir())
    for _ in range(2):
        shared = victim(NUMNET_CACHE_DIR=str(team), NUMNET_CACHE_TRUST_GROUP=str(group))
        assert shared.returncode == 0 and shared.stdout == RIGHT and shared.stderr == "", shared.stderr
    files = [f for f in tag_folder(team).iterdir()]
    assert files and all(f.lstat().st_gid == group for f in files)
    assert all(stat.S_IMODE(f.lstat().st_mode) & 0o040 for f in files if not f.name.startswith("."))
