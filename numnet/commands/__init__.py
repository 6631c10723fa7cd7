"""The ``numnet`` command and its subcommands, built on the library: cli.py parses the
arguments and hands each subcommand to its module (walkthrough, parity, bench, train,
gpu_report, cache). timing.py holds what bench and gpu-report share: the timing of
competitors side by side, and the writer of their tables, targets and JSON.

The library (numnet/*.py, numnet/cuda/) never imports from here.
"""
