"""Loading torch checkpoints without running code from them.

Every checkpoint the plugin reads goes through ``torch.load(weights_only=True)``: only tensors
and plain values are unpickled (plus the numpy scalars and time spans that ESPnet's trainer
stores in its own ``checkpoint.pth``), so a crafted ``.pth`` cannot run code. ESPnet's own
loaders (``--init_param``, ``build_model_from_file`` of its inference, ``Trainer.resume``)
pass ``weights_only=False``; :func:`guard_espnet_loading`, called by the plugin's
entry points, forces weights-only loading in the process and the workers it starts
(``TORCH_FORCE_WEIGHTS_ONLY_LOAD``) and turns a refused or broken file into an error naming it.
"""

import datetime
import os
import re
from pathlib import Path

import numpy as np
import torch

FORCE_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"
# Value types in ESPnet's training checkpoints (reporter statistics); none of them runs code.
# ``np.float64(0).__reduce__()[0]`` is numpy's scalar constructor under any numpy version.
NUMPY_NUMBERS = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
                 np.uint64, np.float16, np.float32, np.float64)
SAFE_GLOBALS = (np.dtype, np.float64(0).__reduce__()[0], datetime.timedelta,
                *(type(np.dtype(t)) for t in NUMPY_NUMBERS))
# Allowed on import, so also in the processes ESPnet spawns (they import the entry point).
torch.serialization.add_safe_globals(list(SAFE_GLOBALS))

_guarded = False


class CheckpointError(ValueError):
    """A checkpoint refused as unsafe, or unreadable; the message names the file."""


def describe_failure(label: str, error: Exception) -> str:
    """One line: why ``label`` (a file, or an option and its file) could not be loaded."""
    lines = [line.strip() for line in str(error).splitlines()
             if line.strip() and not line.startswith("Check the documentation")]
    needed = re.search(r"GLOBAL (\S+)", str(error))
    if needed:
        return (f"{label}: refused: unpickling it would call {needed.group(1)}, which could run"
                " code; only tensors and plain values are loaded (torch.load with"
                " weights_only=True). If you trust the file, re-save its state dict"
                " (torch.save(model.state_dict(), path)) and use that")
    return (f"{label}: not a readable torch checkpoint (truncated or corrupt?):"
            f" {type(error).__name__}: {lines[-1] if lines else ''}".rstrip(": "))


def load_weights(source, map_location="cpu", label: str = None):
    """``torch.load(source, weights_only=True)``; a failure is a ``CheckpointError`` naming
    ``label`` (default: the path). ``source``: a path or a binary file object."""
    label = label or str(source)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise FileNotFoundError(f"{label}: no such file")
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(describe_failure(label, e)) from e


def _blame_file(error: Exception, path, option: str) -> None:
    """Re-raise ``error`` as a ``CheckpointError`` when ``path`` itself cannot be loaded
    safely; otherwise (a fault elsewhere) re-raise it unchanged."""
    if path is not None and Path(path).is_file():
        load_weights(path, label=f"{option} {path}")
    raise error


def guard_espnet_loading() -> None:
    """Weights-only loading for ESPnet's loaders in this process (the loaders are wrapped
    once)."""
    global _guarded
    os.environ[FORCE_ENV] = "1"
    if _guarded:
        return
    from espnet2.tasks import abs_task
    from espnet2.train.trainer import Trainer

    load_pretrained = abs_task.load_pretrained_model
    build_from_file = abs_task.AbsTask.build_model_from_file.__func__
    resume = Trainer.resume

    def load_pretrained_model(init_param: str, *args, **kwargs):
        path = init_param.split(":", 1)[0]
        if not Path(path).is_file():
            raise FileNotFoundError(f"--init_param {path}: no such file")
        try:
            return load_pretrained(init_param, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - sorted out by _blame_file
            _blame_file(e, path, "--init_param")

    def build_model_from_file(cls, config_file=None, model_file=None, device="cpu"):
        for what, path in (("train config", config_file), ("model file", model_file)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"{what} {path}: no such file")
        try:
            return build_from_file(cls, config_file, model_file, device)
        except Exception as e:  # noqa: BLE001 - sorted out by _blame_file
            _blame_file(e, model_file, "model file")

    def resume_from(checkpoint, *args, **kwargs):
        try:
            return resume(checkpoint, *args, **kwargs)
        except Exception as e:  # noqa: BLE001 - sorted out by _blame_file
            _blame_file(e, checkpoint, "--resume checkpoint")

    abs_task.load_pretrained_model = load_pretrained_model
    abs_task.AbsTask.build_model_from_file = classmethod(build_model_from_file)
    Trainer.resume = staticmethod(resume_from)
    _guarded = True


def run_espnet_entry(espnet_main, cmd, check) -> None:
    """An ESPnet entry point (``espnet_main(cmd=argv)``) with checkpoints loaded weights-only
    and ``check(argv)`` on its data first (not for ``--print_config``); ``cmd`` None reads the
    command line."""
    import sys

    argv = sys.argv[1:] if cmd is None else list(cmd)
    guard_espnet_loading()
    if "--print_config" not in argv:
        check(argv)
    espnet_main(cmd=argv)
