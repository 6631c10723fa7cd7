"""The two layers: the library (numnet/*.py, numnet/cuda/) never imports a command
(numnet/commands/), so that a command can change without touching what users import."""

import os
import pathlib
import re
import subprocess
import sys

import numnet

PACKAGE = pathlib.Path(numnet.__file__).parent
COMMANDS = PACKAGE / "commands"


def library_files():
    """Every source file of the library: numnet/**/*.py but commands/ and __main__.py."""
    return [
        path for path in sorted(PACKAGE.rglob("*.py")) if COMMANDS not in path.parents and path.name != "__main__.py"
    ]


def library_modules():
    """The library's modules as dotted names."""
    for path in library_files():
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_importing_the_library_loads_no_command():
    """Import every library module in a fresh process (numnet.cuda in the simulator) and
    look for numnet.commands in sys.modules."""
    modules = list(library_modules())
    assert {"numnet", "numnet.cuda", "numnet.testing", "numnet.data", "numnet.ops"} <= set(modules)
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('numnet.commands')))\n"
    )
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


def test_no_library_source_names_a_command():
    """The same by reading: no library file imports numnet.commands, even inside a function
    that the import above does not run."""
    pattern = re.compile(
        r"^\s*(from\s+numnet\.commands\b|from\s+numnet\s+import\s+.*\bcommands\b|"
        r"import\s+numnet\.commands\b)",
        re.M,
    )
    offenders = [str(path) for path in library_files() if pattern.search(path.read_text())]
    assert offenders == []


def test_python_dash_m_numnet_is_the_numnet_command():
    from numnet.__main__ import main as via_dash_m
    from numnet.commands.cli import main

    assert via_dash_m is main


def test_the_public_api_is_typed():
    """PEP 561: numnet ships py.typed (and pyproject.toml installs it), and every public
    function of numnet, numnet.cuda, numnet.testing and numnet.data annotates each
    parameter and its return."""
    import inspect

    import numnet.cuda
    import numnet.data
    import numnet.testing

    assert (PACKAGE / "py.typed").exists()
    package_data = re.search(
        r"\[tool\.setuptools\.package-data\]\s*numnet = \[(.*?)\]", (PACKAGE.parent / "pyproject.toml").read_text()
    )
    assert package_data and '"py.typed"' in package_data.group(1)
    public = [getattr(numnet, n) for n in numnet.__all__] + [getattr(numnet.cuda, n) for n in numnet.cuda.__all__]
    public += [
        numnet.testing.compare,
        numnet.testing.assert_close,
        numnet.testing.ulp_distance,
        numnet.testing.sum_bound,
        numnet.testing.op_tolerance,
        numnet.data.load_digits,
        numnet.data.load_mnist,
        numnet.data.read_idx,
        numnet.data.write_idx,
    ]
    functions = []
    for obj in public:
        if inspect.isclass(obj):
            functions += [
                f
                for name, f in vars(obj).items()
                if inspect.isfunction(f) and not name.startswith("_") or name == "__init__"
            ]
        elif callable(obj):
            functions.append(obj)
    untyped = []
    for f in functions:
        signature = inspect.signature(f)
        params = [p for name, p in signature.parameters.items() if name != "self"]
        if signature.return_annotation is inspect.Signature.empty or any(
            p.annotation is inspect.Parameter.empty for p in params
        ):
            untyped.append(f.__qualname__)
    assert len(functions) > 30 and untyped == []
