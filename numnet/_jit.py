"""How numnet compiles its CPU kernels: ``jit``, one decorator for all of them, with
numnet's own on-disk cache; and ``threads``, how many threads a kernel may use.

numba's ``cache=True`` is not safe for a package like numnet, whose compiled functions
call one another across files and reach parallel code. Four ways it went wrong here
(numba 0.68), and what this module does about each:

1. **A segfault on the third run.** A parallel function refers to the threading layer's
   symbols (numba_parallel_for, get_num_threads, ...), which exist only once the layer
   is loaded. numba records "load the threading layer first" on a compiled function and
   passes the record on to the functions that link it, but a function loaded from the
   cache comes back without it. So a caller compiled in a process where its parallel
   callee came from the cache is saved without the record, and a later process that
   loads that caller before anything started the layer resolves those symbols to
   address 0 (numba issues 8578, 4807, 9938; PR 9950, unmerged). numnet's fix is a rule
   rather than a repair of the record: **the threading layer is started before any
   numnet function is loaded from the cache** (``_Cache.load_overload``). Every symbol
   then resolves, whatever the cached record says, and a process that never loads
   numnet's code never starts the layer.

   Two other designs were measured and rejected: starting the layer at ``import numnet``
   (the same fix, paid by every import, including a process that only forks workers)
   and marking every caller ``parallel=True`` (numba then warns that nothing was
   parallelised, and numnet promises no warnings).

2. **Stale code after an edit.** numba keys a cached function to its own file only:
   after an edit to kernels.py, ops._forward_if_fit came back from the cache with the
   old kernel compiled into it. numnet's cache lives in a directory named after a hash
   of every source file of the package and of the Python, numba, llvmlite and numpy
   versions (``CACHE_TAG``): an edit anywhere in numnet, or an upgrade, starts a new
   directory, so no compiled function can outlive any code it was compiled from. The
   few most recently used directories are kept (a learner going back and forth between
   two versions of a kernel recompiles neither); older ones are removed.

3. **Damaged or shared caches.** Every data file holds its own index key and a SHA-256
   of its contents, every index a SHA-256 of its own (a garbled file is never unpickled:
   CPython prints errors to stderr while unpickling some garbage, which no ``except``
   can catch), and each is written under a temporary name, then renamed; a data file's
   name is derived from the key, so two processes compiling different signatures at once never
   write the same file (numba numbers the files, and two processes could each take
   number 1: the one that read the index found the other's code, for another
   signature). The index is rewritten under a file lock. A file that is truncated,
   garbled, for another key, or unreadable is a cache miss: numnet compiles again. A
   cache directory that vanishes is made again; one that stops being writable is no
   longer written to (the process runs on uncached), and the next process passes it
   over for the next folder below. Nothing about the cache raises into the user's code.

4. **Code someone else wrote.** The cached code is a pickle, which runs whatever it says
   when loaded: numnet loads it only from folders and files that no one but the user
   (or root) could have written, and makes what it creates private
   (numnet/_trust.py has the rules and the threat model).

Where: ``$NUMNET_CACHE_DIR``, else ``$NUMBA_CACHE_DIR/numnet``, else
``$XDG_CACHE_HOME/numnet`` (``~/.cache/numnet``), else ``numnet-cache-<uid>`` in the
temp directory: the first of these that numnet trusts and can write. ``numnet cache``
shows it; ``numnet cache --clear`` empties it; ``NUMNET_CACHE=0`` turns it off.

**Threads.** numba runs prange loops on its threading layer. numnet leaves numba's
choice (``NUMBA_THREADING_LAYER``) to the user and is safe on each: with pip's numba on
Linux the default is GNU OpenMP (tbb, tried first, needs ``pip install tbb`` plus
LD_LIBRARY_PATH in a virtualenv), and it wakes its threads faster than the workqueue
layer: a 64x128 @ 128x64 product on two threads took 30 us on it, 320 us on workqueue.
GNU OpenMP cannot survive a fork: numba kills a forked child that enters a parallel
region once its parent has started OpenMP. ``threads()`` is therefore 1 in such a child
and every numnet kernel then runs its serial twin (the same source compiled without
``parallel``, the same bits): fork-started worker pools and PyTorch DataLoader workers
work, one thread each, as torch's own DataLoader workers do. numnet's kernels hold the
GIL, so calls from several Python threads run one at a time, on every layer.
"""

import contextlib
import functools
import hashlib
import io
import os
import pickle
import re
import shutil
import stat
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import llvmlite
import numba
import numpy as np
from numba import config, njit
from numba.core import event, serialize
from numba.core.caching import Cache, CompileResultCacheImpl, IndexDataCacheFile, _CacheLocator

from numnet import _trust
from numnet._trust import Policy, Untrusted, say_once

try:
    import fcntl
except ImportError:  # not on Windows: index updates there may drop an entry (a later miss)
    fcntl = None

PACKAGE = Path(__file__).resolve().parent
KEEP_TAGS = 4  # cache directories kept: the current one and the three used before it


# -- where the compiled code lives -----------------------------------------------------


def _source_digest():
    """SHA-256 over every .py file of the package (names and contents) and the versions
    that decide what their compiled code is."""
    h = hashlib.sha256()
    versions = (sys.implementation.name, sys.version, numba.__version__, llvmlite.__version__, np.__version__)
    h.update(repr(versions).encode())
    for path in sorted(PACKAGE.rglob("*.py")):
        h.update(str(path.relative_to(PACKAGE)).encode() + b"\0")
        h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def _version():
    from numnet import __version__  # numnet/__init__.py sets it before importing the kernels

    return __version__


CACHE_TAG = f"{_version()}-{_source_digest()[:16]}"


def _candidate_roots():
    """The folders numnet may keep its cache in, in order of preference: (folder, named
    by the user: a link there is followed)."""
    if os.environ.get("NUMNET_CACHE_DIR"):
        yield Path(os.environ["NUMNET_CACHE_DIR"]), True
    if os.environ.get("NUMBA_CACHE_DIR"):
        yield Path(os.environ["NUMBA_CACHE_DIR"]) / "numnet", False
    xdg = os.environ.get("XDG_CACHE_HOME")
    yield (Path(xdg) if xdg else Path.home() / ".cache") / "numnet", False
    user = os.geteuid() if hasattr(os, "geteuid") else os.environ.get("USERNAME", "user")
    yield Path(tempfile.gettempdir()) / f"numnet-cache-{user}", False


def _choose_root():
    """(the first candidate root that numnet trusts and can write, or None; [(a folder
    passed over as untrusted, why)]). None with NUMNET_CACHE=0 (no cache: every process
    compiles what it runs). Folders numnet makes, it makes private (numnet/_trust.py)."""
    if os.environ.get("NUMNET_CACHE") == "0":
        return None, []
    passed_over = []
    try:
        policy = Policy()
    except Untrusted as e:
        return None, [(None, str(e))]
    for root, named in _candidate_roots():
        try:
            policy.make_folder(root)
            policy.check_root(root, follow=named)
        except Untrusted as e:
            passed_over.append((root, str(e)))
            continue
        except (OSError, RuntimeError):  # cannot be made; RuntimeError: Path.home() without a home
            continue
        if os.access(root, os.W_OK | os.X_OK):
            return root, passed_over
    return None, passed_over


def _say_why(root, passed_over):
    """The one line on stderr when a folder was passed over as untrusted."""
    if passed_over:
        where = f"using {root}" if root else "running without a compiled-code cache"
        first, why = passed_over[0]
        say_once(f"not loading compiled code from {first}: {why}; {where}" if first else f"{why}; {where}")


CACHE_ROOT, PASSED_OVER = _choose_root()
_say_why(CACHE_ROOT, PASSED_OVER)
CACHE_DIR = CACHE_ROOT / CACHE_TAG if CACHE_ROOT else None
_POLICY = Policy() if CACHE_ROOT else None


_TAG_NAME = re.compile(r"[0-9][0-9A-Za-z.+!]*-[0-9a-f]{16}")  # CACHE_TAG's form: version-hash


def _tag_directories():
    """numnet's cache directories in CACHE_ROOT: only folders named as CACHE_TAG is named
    (the root may be a folder the user shares with other things: nothing else is ours)."""
    return [d for d in CACHE_ROOT.iterdir() if _TAG_NAME.fullmatch(d.name) and d.is_dir() and not d.is_symlink()]


def _prune_old_tags():
    """Remove all but the KEEP_TAGS most recently used cache directories of numnet."""
    try:
        tags = _tag_directories()
        tags.sort(key=lambda d: d.stat().st_mtime, reverse=True)
        for old in [d for d in tags if d != CACHE_DIR][KEEP_TAGS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass


_tag_trusted = None  # this process's verdict on CACHE_DIR, once it exists


def _tag_folder_ready(make):
    """Whether compiled code may be loaded from (and saved to) CACHE_DIR: a private
    folder of its own (numnet/_trust.py), made here if ``make`` and missing. The first
    time it exists in a process it is checked, touched (how _prune_old_tags tells recent
    ones) and, if this process made it, the old ones are pruned."""
    global _tag_trusted
    if _tag_trusted is not None:
        return _tag_trusted
    made = False
    try:
        if make and not os.path.lexists(CACHE_DIR):
            _POLICY.make_folder(CACHE_DIR)
            made = True
        _POLICY.check_folder(CACHE_DIR)
    except FileNotFoundError:
        return False  # not made yet: nothing to load
    except Untrusted as e:
        say_once(f"not loading compiled code from {CACHE_DIR}: {e}; running without a compiled-code cache")
        _tag_trusted = False
        return False
    except OSError:
        return False
    _tag_trusted = True
    with contextlib.suppress(OSError):
        if made:
            _prune_old_tags()
        os.utime(CACHE_DIR)
    return True


@functools.cache
def _file_digest(path):
    """For a function compiled with numnet's jit outside the package: its file's hash."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
    except OSError:
        return None


class _Locator(_CacheLocator):
    """numba's view of CACHE_DIR: one flat folder for every numnet function."""

    def __init__(self, py_func, py_file):
        inside = Path(py_file).resolve().is_relative_to(PACKAGE)
        self._stamp = CACHE_TAG if inside else (CACHE_TAG, _file_digest(py_file))
        self._lineno = py_func.__code__.co_firstlineno

    def ensure_cache_path(self):
        if not _tag_folder_ready(make=True):
            raise OSError(f"no trusted cache folder at {CACHE_DIR}")

    def get_cache_path(self):
        return str(CACHE_DIR)

    def get_source_stamp(self):
        return self._stamp

    def get_disambiguator(self):
        return str(self._lineno)

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file)


class _CacheImpl(CompileResultCacheImpl):
    """numba's compile-result (de)serialisation, with numnet's locator and file names:
    module.qualname-line[-options].pyXY, the options (parallel=True, ...) in the name
    because numba's index key does not hold them and numnet compiles some functions
    twice (threaded and serial)."""

    def __init__(self, py_func, options):
        self._lineno = py_func.__code__.co_firstlineno
        self._locator = _Locator(py_func, py_func.__code__.co_filename)
        flavour = "-" + hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:8] if options else ""
        name = f"{py_func.__module__}.{py_func.__qualname__}-{self._lineno}{flavour}".replace("<", "").replace(">", "")
        self._filename_base = f"{name}.py{sys.version_info[0]}{sys.version_info[1]}"


_MAGIC = b"numnet-cache-1\n"


def _sealed(payload):
    """payload with _MAGIC and its SHA-256 before it: what numnet writes to a cache file."""
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _unsealed(blob):
    """The payload of a _sealed blob; None when the blob is truncated, garbled or not one."""
    digest, payload = blob[len(_MAGIC) : len(_MAGIC) + 32], blob[len(_MAGIC) + 32 :]
    if not blob.startswith(_MAGIC) or hashlib.sha256(payload).digest() != digest:
        return None
    return payload


@contextlib.contextmanager
def _index_lock(directory):
    """An exclusive lock on the cache directory while one process rewrites an index."""
    if fcntl is None:
        yield
        return
    with _POLICY.open_lock(os.path.join(directory, ".index.lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class _CacheFile(IndexDataCacheFile):
    """numba's index + data files, made safe to share and to damage (module docstring, 3)
    and read only if no one but the user (or root) could have written them, written
    private (numnet/_trust.py)."""

    def save(self, key, data):
        payload = serialize.dumps((key, data))
        name = self._data_name_for(serialize.dumps(key))
        with self._open_for_write(self._data_path(name)) as f:  # a temporary name, then a rename
            f.write(_sealed(payload))
        with _index_lock(self._cache_path):
            overloads = self._load_index()
            overloads[key] = name
            self._save_index(overloads)

    def load(self, key):
        name = self._load_index().get(key)
        if name is None:
            return None
        blob = self._read(self._data_path(name))
        payload = None if blob is None else _unsealed(blob)
        if payload is None:  # missing, truncated or garbled
            return None
        stored_key, data = pickle.loads(payload)
        return data if stored_key == key else None

    def _save_index(self, overloads):
        payload = pickle.dumps(self._version, protocol=-1) + self._dump((self._source_stamp, overloads))
        with self._open_for_write(self._index_path) as f:
            f.write(_sealed(payload))

    def _load_index(self):
        blob = self._read(self._index_path)
        payload = None if blob is None else _unsealed(blob)
        if payload is None:  # missing, truncated or garbled: an empty index, rewritten whole
            return {}
        stream = io.BytesIO(payload)
        if pickle.load(stream) != self._version:
            return {}
        stamp, overloads = pickle.loads(stream.read())
        return overloads if stamp == self._source_stamp else {}

    @staticmethod
    def _read(path):
        """The file's bytes if it is there and trusted; else None (a miss, said once)."""
        try:
            return _POLICY.read(path)
        except FileNotFoundError:
            return None
        except Untrusted as e:
            say_once(f"not loading compiled code from {path}: {e}; compiling it again")
            return None

    @contextlib.contextmanager
    def _open_for_write(self, filepath):
        """A new private file under a temporary name, renamed to ``filepath`` when whole."""
        temporary = f"{filepath}.tmp.{uuid.uuid4().hex[:16]}"
        try:
            with _POLICY.create(temporary) as f:
                yield f
            os.replace(temporary, filepath)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _data_name_for(self, key_bytes):
        return self._data_name_pattern.replace("{number:d}", hashlib.sha256(key_bytes).hexdigest()[:16])


class _Cache:
    """The cache of one numnet function: numba's FunctionCache protocol (load_overload,
    save_overload), with the rules of the module docstring."""

    def __init__(self, py_func, options):
        self._name = repr(py_func)
        self._py_func = py_func
        self._impl = _CacheImpl(py_func, options)
        self._cache_file = _CacheFile(str(CACHE_DIR), self._impl.filename_base, self._impl.locator.get_source_stamp())
        self._enabled = True

    cache_path = property(lambda self: str(CACHE_DIR))

    def enable(self):
        self._enabled = True

    def disable(self):
        self._enabled = False

    def flush(self):
        with contextlib.suppress(Exception):
            self._cache_file.flush()

    def load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        target_context.refresh()
        try:
            if not _tag_folder_ready(make=False):
                return None
            start_threading_layer()  # rule 1 of the module docstring
            data = self._cache_file.load(self._index_key(sig, target_context.codegen()))
            return None if data is None else self._impl.rebuild(target_context, data)
        except Exception:  # any damage is a miss: numba compiles afresh
            return None

    def save_overload(self, sig, data):
        if not self._enabled or not self._impl.check_cachable(data):
            return
        try:
            self._impl.locator.ensure_cache_path()
            self._cache_file.save(self._index_key(sig, data.codegen), self._impl.reduce(data))
        except OSError:  # read-only, full, vanished: stop trying, run uncached
            self._enabled = self._enabled and CACHE_DIR.is_dir() and os.access(CACHE_DIR, os.W_OK)
        except Exception:
            pass

    # numba's key: the signature, the CPU (name and features), hashes of the bytecode
    # and of any closure variables.
    _index_key = Cache._index_key


# -- saying that compiling takes a while -------------------------------------------------------

NOTICE_SECONDS = 2.0  # a compile of numnet's code that runs this long is announced


def compile_notice():
    """The line numnet prints once when compiling keeps a learner waiting."""
    if CACHE_DIR is None:
        return "numnet: compiling numnet's kernels (without a cache, every run compiles them)"
    return "numnet: compiling numnet's kernels, first run only (later runs load them from the cache)"


class _CompileNotice(event.Listener):
    """Announces, once per process on stderr, a compile of numnet's code that has run
    NOTICE_SECONDS: an empty cache's first run compiles for tens of seconds, and a
    silent screen looks like a hang. numba compiles one function at a time (a global
    lock) and nests the compiles of the functions it calls: the clock runs from the
    outermost one."""

    def __init__(self):
        self.depth = 0
        self.timer = None
        self.said = False

    def on_start(self, ev):
        self.depth += 1
        if self.depth > 1 or self.said:
            return
        py_func = getattr(ev.data.get("dispatcher"), "py_func", None)
        if getattr(py_func, "__module__", "").startswith("numnet"):
            self.timer = threading.Timer(NOTICE_SECONDS, self._say)
            self.timer.daemon = True
            self.timer.start()

    def on_end(self, ev):
        self.depth -= 1
        if self.depth == 0 and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _say(self):
        if not self.said:
            self.said = True
            # One write of the whole line: print's two (text, then newline) interleaved
            # when forked workers compiled at once ("...cache)numnet: ...cache)" + "\n\n").
            sys.stderr.write(compile_notice() + "\n")
            sys.stderr.flush()


event.register("numba:compile", _CompileNotice())


def jit(fn=None, **options):
    """``@numba.njit(**options)`` with numnet's cache (module docstring); without one
    when no folder for it can be written."""
    if fn is None:
        return lambda f: jit(f, **options)
    dispatcher = njit(**options)(fn)
    if CACHE_DIR is not None and not config.DISABLE_JIT:
        dispatcher._cache = _Cache(fn, options)
    return dispatcher


def cache_report():
    """What ``numnet cache`` prints: [(directory, bytes, files, is the current one)] for
    every numnet cache directory under CACHE_ROOT, and the numba files an older numnet
    (which used numba's own cache) left beside its sources."""

    def usage(paths):
        sizes = [p.stat().st_size for p in paths if p.is_file()]
        return sum(sizes), len(sizes)

    tags = []
    if CACHE_ROOT is not None and CACHE_ROOT.is_dir():
        for d in sorted(_tag_directories(), key=lambda d: d != CACHE_DIR):
            tags.append((d, *usage(d.rglob("*")), d == CACHE_DIR))
    legacy = list(PACKAGE.rglob("__pycache__/*.nb[ic]"))
    return tags, (legacy, *usage(legacy))


def describe_folder(folder):
    """ "owner NAME, mode 0700: trusted (...)" or "...: NOT trusted: why", for numnet cache."""
    try:
        st = os.lstat(folder)
    except OSError as e:
        return f"cannot be read: {e.strerror}"
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        owner = f"uid {st.st_uid}"
    try:
        Policy().check_root(folder, follow=True) if folder == CACHE_ROOT else Policy().check_folder(folder)
        verdict = "trusted: only you and root can write it" + (
            f" (and the members of group {Policy().group}, by {_trust.GROUP_VARIABLE})" if Policy().group else ""
        )
    except (Untrusted, OSError) as e:
        verdict = f"NOT trusted: {e}"
    return f"owner {owner}, mode {stat.S_IMODE(st.st_mode):04o}: {verdict}"


def clear_cache():
    """Remove everything cache_report lists; the bytes freed."""
    tags, (legacy, legacy_bytes, _) = cache_report()
    for d, _, _, _ in tags:
        shutil.rmtree(d, ignore_errors=True)
    for f in legacy:
        with contextlib.suppress(OSError):
            f.unlink()
    return sum(size for _, size, _, _ in tags) + legacy_bytes


# -- threads -----------------------------------------------------------------------------


@functools.cache
def start_threading_layer():
    """Load numba's threading layer (once): before any numnet code comes from the cache."""
    numba.get_num_threads()


_serial_only = False  # True in a forked child that must not enter a parallel region


def _after_fork_in_child():
    global _serial_only
    try:
        layer = numba.threading_layer()  # ValueError: the parent never started a layer
    except ValueError:
        return
    if layer == "omp" and sys.platform.startswith("linux"):  # GNU OpenMP: not fork-safe
        _serial_only = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


SAMPLE_SECONDS = 0.25  # how often threads() reads how busy the machine is


def _machine_busy_seconds():
    """Seconds all cores have been busy since boot (/proc/stat: all but idle and iowait,
    with the time the hypervisor gave to other machines)."""
    with open("/proc/stat", "rb") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class _Load:
    """The cores other processes keep busy: the machine's busy time minus this process's
    CPU time, over the last SAMPLE_SECONDS or more; and the thread count that leaves."""

    def __init__(self):
        self.next_reading = 0.0  # time.monotonic() from which a new reading is due
        self.at = self.busy = self.ours = None
        self.threads = config.NUMBA_NUM_THREADS
        self.last_request = -1.0  # time.monotonic() of the last threads() call

    def read(self, now):
        self.next_reading = now + SAMPLE_SECONDS
        try:
            busy = _machine_busy_seconds()
        except (OSError, ValueError):  # no /proc/stat (not Linux): assume no one else
            return
        times = os.times()
        ours = times.user + times.system
        if self.at is not None:
            others = max(0.0, (busy - self.busy) - (ours - self.ours)) / (now - self.at)
            self.threads = max(1, config.NUMBA_NUM_THREADS - int(others + 0.5))
        self.at, self.busy, self.ours = now, busy, ours


_load = _Load()
_numba_count = threading.local()  # what this Python thread last gave numba.set_num_threads


# numba's GNU OpenMP workers spin for a few milliseconds after a parallel region, then
# sleep; waking a sleeping one took 1.5-9 ms here (a virtual machine's idle CPU), 30 times
# the 64x784 @ 784x128 product it was woken for. Measured: a threaded call 5 ms after the
# last one took its usual 0.17 ms, 10 ms after it 3 ms (numnet/commands/bench.py, README).
WARM_SECONDS = 0.005


def threads(large=False):
    """How many threads numnet's kernels may use now, for the ``threads`` argument of
    the kernels that have a threaded path (the callers ask only for work that can pay
    for threads; ``large``: work that pays even for waking them):

    - 1 in a child forked from a process that started GNU OpenMP (module docstring);
    - 1 for a call that is not ``large`` and comes more than WARM_SECONDS after the
      previous request: an isolated call (a notebook cell) runs on one thread rather
      than wait for sleeping threads; the second call of a burst (a training loop)
      wakes them, and the calls after it find them awake;
    - else numba's thread count less the cores other processes keep busy (read at most
      every SAMPLE_SECONDS). A parallel region is as slow as its slowest thread, and a
      thread that shares its core with a busy process waits whole scheduler time slices
      (milliseconds) for its turn: with one core of two taken, a 50 us product took
      16 ms on two threads. On the free cores alone it takes its usual time.

    numba's own count (set_num_threads) is per Python thread: it is set here for the
    calling thread when the answer changes.
    """
    if _serial_only:
        return 1
    now = time.monotonic()
    if now >= _load.next_reading:
        _load.read(now)
    warm = now - _load.last_request < WARM_SECONDS
    _load.last_request = now
    count = _load.threads
    if count == 1 or not (warm or large):
        return 1
    if getattr(_numba_count, "count", config.NUMBA_NUM_THREADS) != count:
        numba.set_num_threads(count)
        _numba_count.count = count
    return count
