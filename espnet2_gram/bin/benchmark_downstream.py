"""Deprecated: ``python -m espnet2_gram.benchmarks.downstream`` (this alias goes in the next release)."""

import runpy
import sys

if __name__ == "__main__":
    print("espnet2_gram.bin.benchmark_downstream is deprecated; use python -m espnet2_gram.benchmarks.downstream",
          file=sys.stderr)
    runpy.run_module("espnet2_gram.benchmarks.downstream", run_name="__main__", alter_sys=True)
