"""Every fenced code block of the README, docs/*.md, the ASR demo's README and the model card is
run or checked here, so none can rot.

- Python (also a ``python - <<'PY'`` heredoc): executed on tiny models made here, with
  placeholder paths replaced through the explicit per-block mapping ``PYTHON_BLOCKS``.
- YAML: ``frontend: gram`` configs are parsed by ESPnet's ASR task parser (plugin loaded), their
  ``*_conf`` keys checked against the chosen classes, and the frontend built on a tiny GRAM.
- Shell: every ``python -m espnet2_gram.bin.X`` names an existing entry point whose parser
  accepts each ``--option`` used (``--print_config`` commands are run); recipe scripts exist and
  each ``--name`` is one of their variables (``--stage`` values within their stages); sourced
  files and pytest targets exist; repository paths named as values (or in a list value) exist.
- Whatever cannot run here is listed in ``NOT_RUNNABLE`` with a reason; an unlisted command
  or block that no rule handles fails the test.
"""

import argparse
import contextlib
import importlib
import importlib.util
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "egs2/gram/asr_demo/README.md"]
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```$", re.S | re.M)

# Blocks that are not commands or code: (file, first line) -> reason.
NOT_CODE = {
    ("docs/hear.md", "WARNING: All log messages before absl::InitializeLog() is called are"
                     " written to STDERR"): "the validator's recorded output",
    ("README.md", "run.sh, cmd.sh, path.sh, db.sh, test.sh   recipe entry points"):
        "the repository layout",
}
# Shell commands that cannot run here: start of the command -> reason.
NOT_RUNNABLE = {
    "pip install": "installs packages from the network into the user's environment",
    "grep -v -E '^(torch|torchaudio|triton)==|^(nvidia|cuda)-' requirements.lock":
        "writes a filtered lock to /tmp for the pip install that follows",
    "python3 -m venv ../hearval-venv": "creates a separate environment outside the repository",
    "../hearval-venv/bin/pip install": "downloads the HEAR validator and TensorFlow",
    "../hearval-venv/bin/hear-validator": "needs the separate TensorFlow environment above",
    "egs2/gram/scripts/gpu_wheels.sh": "downloads wheels from PyPI",
    "egs2/gram/scripts/fetch_gramt_source.sh": "clones the authors' repository from GitHub",
    "egs2/gram/scripts/gpu_benchmark.sh": "needs a GPU and minutes; its --tiny CPU run is"
                                          " tests/benchmarks/test_gpu_benchmark.py",
}
# Python blocks: (file, first line) -> {placeholder: replacement}; "{tiny16}" and "{tests}"
# stand for the 16 kHz tiny GRAM packed by docs/hear.md's heredoc and this directory.
PYTHON_BLOCKS = {
    ("docs/hear.md", "import torch"): {'"exp/gram_packed"': '"{tiny16}"',
                                       'model.to("cuda")': 'model.to("cpu")'},
    ("docs/hear.md", "import sys, torch, yaml"): {'"tests"': '"{tests}"'},
}
TINY16_BLOCK = ("docs/hear.md", "import sys, torch, yaml")
# YAML blocks: (file, first line) -> {placeholder: replacement} before building the frontend.
YAML_BLOCKS = {
    ("README.md", "# ASR (or any task sharing its frontends)"):
        {"exp/packed/gram_binaural": "{tiny16}"},
}
RECIPE_SCRIPTS = {"./run.sh": ["conf/demo/recipe.sh", "conf/mini/recipe.sh",
                              "conf/paper/recipe.sh"],
                  "egs2/gram/asr_demo/run.sh": [],
                  "./test.sh": []}
# Recipe options whose value holds options of an entry point.
PASSED_ON = {("./run.sh", "gram_args"): "espnet2_gram.bin.gram_train",
             ("egs2/gram/asr_demo/run.sh", "asr_args"): "espnet2_gram.bin.asr_train"}


def blocks():
    """(file relative to the root, language, text) of every fenced block."""
    for path in DOCS:
        for m in FENCE.finditer(path.read_text()):
            body = "\n".join(line[len(m[1]):] for line in m[3].splitlines())
            yield path.relative_to(ROOT).as_posix(), m[2], body


def key(name, text):
    return name, text.strip().splitlines()[0].strip()


def substitute(text, mapping, values):
    for old, new in mapping.items():
        assert old in text, f"placeholder {old!r} no longer in the block"
        text = text.replace(old, new.format(**values))
    return text


def commands(text):
    """Shell commands of a block, continuation lines joined, as (line, heredoc body)."""
    lines, out = text.replace("\\\n", " ").splitlines(), []
    while lines:
        line = lines.pop(0)
        heredoc = re.search(r"<<\s*'?(\w+)'?", line)
        body = None
        if heredoc:
            end = lines.index(heredoc[1])
            body, lines = "\n".join(lines[:end]) + "\n", lines[end + 1:]
        if shlex.split(line, comments=True):
            out.append((line, body))
    return out


def script_variables(paths):
    names = set()
    for p in paths:
        names |= set(re.findall(r"^([a-z_][a-z0-9_]*)=", (ROOT / p).read_text(), re.M))
    return names


class _Captured(Exception):
    pass


def entry_point_options(module):
    """Option strings of an entry point's parser (its ``main`` is stopped at parsing)."""
    mod = importlib.import_module(module)
    found = {}

    def capture(self, *args, **kwargs):
        found["parser"] = self
        raise _Captured

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        with pytest.raises(_Captured):
            mod.main([])
    return set(found["parser"]._option_string_actions)


def check_python_m(tokens):
    """``-m MODULE args``: pytest targets exist; espnet2_gram entry points exist and accept
    each option; ``--print_config`` commands run."""
    module, args = tokens[tokens.index("-m") + 1], tokens[tokens.index("-m") + 2:]
    args = args[:args.index(">")] if ">" in args else args
    if module == "pytest":
        for a in args:
            assert a.startswith("-") or (ROOT / a).exists(), a
        return
    assert module.startswith(("espnet2_gram.bin.", "espnet2_gram.benchmarks.")), module
    assert importlib.util.find_spec(module), f"no entry point {module}"
    options = entry_point_options(module)
    for a in args:
        if a.startswith("--"):
            assert a.split("=")[0] in options, f"{module}: no option {a}"
        elif re.match(r"(conf|egs2|espnet2_gram|tests)/", a):
            assert (ROOT / a).exists(), f"{module}: no file {a}"
    if "--print_config" in args and "..." not in args:
        with pytest.raises(SystemExit) as e:  # the config goes to pytest's captured stdout
            importlib.import_module(module).main(args)
        assert e.value.code in (0, None), f"{module} {args}"


def check_recipe(script, args):
    """Each ``--name`` of a recipe script is a variable of it (or of its presets), the
    preset exists, and ``--stage``/``--stop_stage`` lie within its stages."""
    path = ROOT / script
    assert path.is_file() and path.stat().st_mode & 0o111, script
    names = script_variables([script, *RECIPE_SCRIPTS[script]])
    last = int(re.search(r"^stop_stage=(\d+)", path.read_text(), re.M)[1]) \
        if "stop_stage" in names else None
    args = list(args)
    while args:
        a = args.pop(0)
        if a in ("--help", "-h", "..."):  # "...": the rest elided
            continue
        assert a.startswith("--"), f"{script}: positional argument {a}"
        name = a[2:].split("=")[0].replace("-", "_")
        assert name in names, f"{script}: no option {a}"
        value = a.split("=", 1)[1] if "=" in a else args.pop(0)
        if name in ("stage", "stop_stage"):
            assert 1 <= int(value) <= last, f"{script} {a} {value}"
        if name == "preset":
            assert (ROOT / "conf" / value / "recipe.sh").is_file(), value
        if (script, name) in PASSED_ON:
            options = entry_point_options(PASSED_ON[script, name])
            for option in shlex.split(value):
                assert not option.startswith("--") or option in options, f"{a} {option}"
        for word in value.split():  # a path, or a list of paths (--asr_configs)
            if re.match(r"(conf|egs2)/", word):
                assert (ROOT / word).exists(), word


def python_snippets():
    """(file, text) of every Python block and ``python - <<'TAG'`` heredoc."""
    for name, lang, text in blocks():
        if lang == "python":
            yield name, text
        elif lang == "sh":
            yield from ((name, body) for _, body in commands(text) if body)


def run_snippet(name, text, values):
    exec(substitute(text, PYTHON_BLOCKS[key(name, text)], values), {})


@pytest.fixture(scope="module")
def values(tmp_path_factory):
    """Run the block packing a tiny 16 kHz GRAM (``TINY16_BLOCK``) in a scratch directory."""
    work = tmp_path_factory.mktemp("docs")
    values = {"tests": str(ROOT / "tests"), "tiny16": str(work / "exp/hv_model/gram_tiny16")}
    (text,) = [t for n, t in python_snippets() if key(n, t) == TINY16_BLOCK]
    with contextlib.chdir(work):
        run_snippet(TINY16_BLOCK[0], text, values)
    return values


def test_every_block_is_handled():
    """A new block or command that no rule handles (nor list names) fails here."""
    for name, lang, text in blocks():
        k = key(name, text)
        if lang in ("", "text"):
            assert k in NOT_CODE, f"{name}: unlisted block {k[1]!r}"
        elif lang == "yaml":
            assert k in YAML_BLOCKS, f"{name}: YAML block not checked: {k[1]!r}"
        else:
            assert lang in ("python", "sh"), f"{name}: block of language {lang!r}"
    snippets = {key(n, t) for n, t in python_snippets()}
    for k in snippets:
        assert k in PYTHON_BLOCKS, f"{k[0]}: Python without a mapping: {k[1]!r}"
    found = snippets | {key(n, t) for n, _, t in blocks()}
    for k in [*NOT_CODE, *PYTHON_BLOCKS, *YAML_BLOCKS]:
        assert k in found, f"listed block no longer exists: {k}"


def test_shell_blocks():
    """Entry points and their options, recipe options, sourced files, listed exceptions."""
    used = set()
    for name, lang, text in blocks():
        if lang != "sh":
            continue
        for line, body in commands(text):
            if body:  # a heredoc: run as a Python block (the ``values`` fixture)
                continue
            command = re.sub(r"^(\w+=\S*\s+)+", "", line.strip())  # without VAR=value
            listed = [s for s in NOT_RUNNABLE if command.startswith(s)]
            if listed:
                used |= set(listed)
                continue
            tokens = shlex.split(command, comments=True)
            head = tokens[0]
            if head in (".", "source"):
                assert (ROOT / tokens[1]).is_file(), f"{name}: {line}"
            elif head in RECIPE_SCRIPTS:
                check_recipe(head, tokens[1:])
            elif "-m" in tokens and re.search(r"(^|/)(python3?|torchrun)$", head):
                check_python_m(tokens)
            else:
                pytest.fail(f"{name}: command neither checked nor listed: {line.strip()}")
    assert used == set(NOT_RUNNABLE), f"stale entries: {set(NOT_RUNNABLE) - used}"


def test_python_blocks(values):
    """Python blocks and heredocs run on the tiny models (``TINY16_BLOCK`` ran in ``values``)."""
    for name, text in python_snippets():
        if key(name, text) != TINY16_BLOCK:
            run_snippet(name, text, values)


def test_yaml_blocks(values):
    """``frontend: gram`` configs: ASR's parser accepts them, the options fit the classes,
    and the frontend builds on a tiny GRAM."""
    import inspect

    import espnet2_gram  # noqa: F401
    from espnet2.tasks.asr import ASRTask

    choices = {c.name: c for c in ASRTask.class_choices_list}
    for name, lang, text in blocks():
        if lang != "yaml":
            continue
        config = yaml.safe_load(substitute(text, YAML_BLOCKS[key(name, text)], values))
        assert config["frontend"] == "gram", f"{name}: only frontend: gram configs are checked"
        args = ASRTask.get_parser().parse_args(
            [f"--{k}={v if isinstance(v, str) else yaml.safe_dump(v, default_flow_style=True)}"
             for k, v in config.items()])
        for part in ("frontend", "encoder"):
            cls = choices[part].get_class(getattr(args, part))
            params = inspect.signature(cls).parameters
            for option in config.get(f"{part}_conf", {}):
                assert option in params, f"{name}: {part} {cls.__name__} has no {option}"
        choices["frontend"].get_class("gram")(**args.frontend_conf)


def test_model_card_example(packed, tmp_path):
    """The model card's Python example runs on the packed tiny GRAM and a short clip."""
    from espnet2_gram.pretrained.packing import load_gram

    card = (packed / "README.md").read_text()
    ((_, lang, text),) = [m.groups() for m in FENCE.finditer(card)]
    assert lang == "python"
    model = load_gram(packed)
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.random.default_rng(0).uniform(-0.5, 0.5, (model.frontend.fs,
             model.frontend.in_channels)), model.frontend.fs)
    scope = {}
    exec(substitute(text, {"'this/directory'": repr(str(packed)), "'clip.wav'": repr(str(clip))},
                    {}), scope)
    assert scope["emb"].shape[0] == 1 and scope["frames"].dim() == 3
