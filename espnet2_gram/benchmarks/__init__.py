"""Speed and memory benchmarks (``python -m espnet2_gram.benchmarks.<name>``)."""
