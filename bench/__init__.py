"""Benchmarks of the export on the local stack: `make bench` (or `python -m bench --help`).

Benchmarks are not tests: nothing here runs in `make test` or gates CI. Every figure is a ratio
or a distribution measured side by side in the same run, because the machine is shared and
noisy. One module per scenario (`s1_end_to_end` ... `s6_orchestration`); `report` turns their
results into the Markdown table of targets, `plots` into PNGs.
"""
