"""Deprecated: ``python -m espnet2_gram.benchmarks.reuse`` (this alias goes in the next release)."""

import runpy
import sys

if __name__ == "__main__":
    print("espnet2_gram.bin.benchmark_reuse is deprecated; use python -m espnet2_gram.benchmarks.reuse",
          file=sys.stderr)
    runpy.run_module("espnet2_gram.benchmarks.reuse", run_name="__main__", alter_sys=True)
