"""Imported first by the entry points that load ESPnet. ESPnet prints a notice on stdout when its
attention module is imported (Flash Attention not installed); it goes to stderr here, so that
what an entry point writes on stdout (``--print_config > config.yaml``) stays clean."""

import contextlib
import sys

with contextlib.redirect_stdout(sys.stderr):
    import espnet.nets.pytorch_backend.transformer.attention  # noqa: F401
