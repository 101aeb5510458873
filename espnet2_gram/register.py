"""Registration of GRAM in ESPnet's own tasks, done when those task modules are imported.

``import espnet2_gram`` installs an import hook: whenever ``espnet2.tasks.<task>`` is imported
(before or after), ``gram`` is added to its ``frontend_choices`` and ``encoder_choices``
(classification also gets ``probe``, the HEAR-style MLP on cached embeddings), the
module's ``initialize`` (ESPnet's ``--init``) leaves the GRAM parts alone, and its tasks'
``build_model`` refuses an encoder input layer that subsamples ``frontend: gram`` frames and
writes each GRAM part's architecture into ``<part>_conf.gram_config`` (so ``config.yaml`` is
self-contained). The hook costs nothing until then, so importing the plugin stays light.
Entry points that run ESPnet's trainers with the plugin loaded:
``python -m espnet2_gram.bin.{asr,cls}_{train,inference}``.
"""

import importlib.abc
import importlib.util
import sys

# Tasks whose frontend choices get "gram" (they hold their own ClassChoices objects).
FRONTEND_TASKS = ("espnet2.tasks.asr", "espnet2.tasks.cls", "espnet2.tasks.lid",
                  "espnet2.tasks.spk", "espnet2.tasks.slu", "espnet2.tasks.st")
# Tasks whose encoder choices get "gram".
ENCODER_TASKS = ("espnet2.tasks.cls", "espnet2.tasks.asr")


def register(module) -> None:
    """Add GRAM to the class choices of an imported ESPnet task module and adapt its
    initialisation and model building (once per module)."""
    from espnet2_gram.downstream.heads import ProbeEncoder
    from espnet2_gram.frontend.pretrained_gram import GRAMESPnetEncoder, GRAMFrontend

    name = module.__name__
    if name in FRONTEND_TASKS and hasattr(module, "frontend_choices"):
        module.frontend_choices.classes["gram"] = GRAMFrontend
    if name in ENCODER_TASKS and hasattr(module, "encoder_choices"):
        module.encoder_choices.classes["gram"] = GRAMESPnetEncoder
    if name == "espnet2.tasks.cls" and hasattr(module, "encoder_choices"):
        module.encoder_choices.classes["probe"] = ProbeEncoder
    if callable(getattr(module, "initialize", None)) and \
            not hasattr(module.initialize, "espnet_initialize"):
        module.initialize = _sparing_initialize(module.initialize)
    from espnet2.tasks.abs_task import AbsTask

    for task in list(vars(module).values()):
        if isinstance(task, type) and issubclass(task, AbsTask) and \
                task.__module__ == name and "build_model" in vars(task) and \
                not hasattr(vars(task)["build_model"].__func__, "espnet_build_model"):
            task.build_model = _gram_build_model(vars(task)["build_model"].__func__, module)


def _sparing_initialize(espnet_initialize):
    from espnet2_gram.frontend.pretrained_gram import initialize_sparing_gram

    def initialize(model, init: str) -> None:
        initialize_sparing_gram(model, init, espnet_initialize)

    initialize.espnet_initialize = espnet_initialize
    return initialize


def _gram_build_model(espnet_build_model, module):
    from espnet2_gram.frontend.pretrained_gram import (GRAMFrontend, check_input_layer,
                                                       record_gram_config)

    def build_model(cls, args):
        model = espnet_build_model(cls, args)
        frontend = getattr(model, "frontend", None)
        if isinstance(frontend, GRAMFrontend) and hasattr(module, "encoder_choices"):
            check_input_layer(args, module.encoder_choices.get_class(args.encoder), frontend)
        record_gram_config(args, model)
        return model

    build_model.espnet_build_model = espnet_build_model
    return classmethod(build_model)


class _RegisteringLoader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        register(module)


class _TaskImportHook(importlib.abc.MetaPathFinder):
    targets = set(FRONTEND_TASKS) | set(ENCODER_TASKS)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.targets:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Install the hook once; register in task modules that are already imported."""
    if not any(isinstance(f, _TaskImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TaskImportHook())
    for name in _TaskImportHook.targets:
        if name in sys.modules:
            register(sys.modules[name])
