"""Evaluate any HEAR module on tasks in HEAR's layout (clean HEAR, Nat-HEAR, the spatial tasks).

The module is named as hear-eval-kit names it (``--module espnet2_gram.hear --model_path
exp/packed/gram_binaural``, or any installed HEAR package): its ``load_model``, ``sample_rate``,
``get_scene_embeddings`` and, for event tasks, ``get_timestamp_embeddings`` are all that is
used, checked first (:func:`check_hear_api`). Each task's embeddings are computed once per
module, model and channel policy (cached as Kaldi-style embedding dirs, one per split,
refreshed when any of those or the audio changes), then the HEAR protocol trains a probe per
fold and seed through the downstream runner (``espnet2_gram.downstream.runs``): an MLP on the
scene embedding (on every frame for event tasks), HEAR's grid over learning rate and hidden
layers chosen on validation, k-fold tasks with fold i tested, fold i+1 validating and the
rest training. Classification tasks are scored by accuracy and mAP, event tasks by the onset
F-measure, ``cartesian-regression`` (Nat-HEAR DoA) tasks by the DoA metrics, ``regression``
(Nat-HEAR RT60) tasks by absolute errors.

Multichannel models (an ``n_channels`` attribute above 1, as a binaural or FOA GRAM has) get the
task's audio as it is; mono models get one channel of it: ``first`` (left or W) or ``mean``.
"""

import hashlib
import importlib
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from espnet2_gram.downstream.spec import TASKS
from espnet2_gram.nat_hear.generate import METADATA, audio_rates, load_task_audio, read_task
from espnet2_gram.simulation.geometry import cart_to_sph
from espnet2_gram.utils.audio import to_mono
from espnet2_gram.utils.fileio import atomic_open, atomic_path, write_kv
from espnet2_gram.utils.provenance import file_digest

logger = logging.getLogger(__name__)

CHANNEL_POLICIES = ("first", "mean")
# HEAR prediction type -> the downstream task (espnet2_gram.downstream.spec) that scores it
TASK_OF_PREDICTION = {"multiclass": "cls", "multilabel": "cls", "cartesian-regression": "doa",
                      "regression": "reg"}
HEAR_GRID = ["optim_conf.lr=3.2e-3|1e-3|3.2e-4|1e-4", "head.hidden_sizes=[1024]|[1024,1024]"]


def load_hear_module(name: str, model_path: str = "", options: Optional[dict] = None):
    """``(module, model)`` of a HEAR module, its ``load_model`` given ``options`` as keywords
    (hear-eval-kit's ``--model-options``), checked by :func:`check_hear_api`."""
    module = importlib.import_module(name)
    missing = [f for f in ("load_model", "get_scene_embeddings") if not hasattr(module, f)]
    if missing:
        raise ValueError(f"--module {name}: not a HEAR module (no {', '.join(missing)})")
    args = [model_path] if model_path else []
    try:
        model = module.load_model(*args, **(options or {}))
    except TypeError as e:
        if not options:
            raise
        raise ValueError(f"--model_options {json.dumps(options)}: {name}.load_model does not"
                         f" take them ({e})") from e
    check_hear_api(name, module, model)
    return module, model


def check_hear_api(name: str, module, model, seconds: float = 1.0) -> None:
    """What the evaluation relies on, on two clips of quiet noise: an integer ``sample_rate``;
    scene embeddings as a float32 tensor (2, D), finite, D = ``scene_embedding_size`` where
    the model gives one; and, where the module has ``get_timestamp_embeddings``, embeddings
    (2, T, D') with timestamps (2, T) in milliseconds, ascending, inside the clip. Else a
    ``ValueError`` naming the module and what it returned."""
    rate = getattr(model, "sample_rate", None)
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"--module {name}: the model's sample_rate is {rate!r}, expected a"
                         " positive integer (Hz)")
    n = int(seconds * rate)
    noise = np.random.default_rng(0).normal(0.0, 0.01, (2, n)).astype(np.float32)
    audio = torch.from_numpy(np.stack([channel_input(x, model, "first") for x in noise]))
    with torch.no_grad():
        scene = module.get_scene_embeddings(audio, model)
    problem = _tensor_problem(scene, 2, (2,))
    size = getattr(model, "scene_embedding_size", None)
    if not problem and size is not None and scene.shape[1] != size:
        problem = f"width {scene.shape[1]}, but scene_embedding_size is {size}"
    if problem:
        raise ValueError(f"--module {name}: get_scene_embeddings {problem}")
    if not hasattr(module, "get_timestamp_embeddings"):
        return
    with torch.no_grad():
        emb, stamps = module.get_timestamp_embeddings(audio, model)
    problem = _tensor_problem(emb, 3, (2,)) or _tensor_problem(stamps, 2, tuple(emb.shape[:2]))
    if not problem:
        duration_ms = 1000.0 * n / rate
        diffs = torch.diff(stamps.double(), dim=1)
        if stamps.shape[1] > 1 and float(stamps.max()) < 0.25 * duration_ms:
            problem = (f"timestamps end at {float(stamps.max()):g} for a {duration_ms:g}-ms"
                       " clip: expected milliseconds")
        elif (diffs <= 0).any() or float(stamps.min()) < 0 or float(stamps.max()) > duration_ms:
            problem = f"timestamps not ascending inside [0, {duration_ms:g}] ms"
    if problem:
        raise ValueError(f"--module {name}: get_timestamp_embeddings {problem}")


def _tensor_problem(x, ndim: int, leading: tuple) -> Optional[str]:
    """Why ``x`` is not a finite float32 tensor of ``ndim`` axes starting with ``leading``."""
    if not isinstance(x, torch.Tensor):
        return f"returned {type(x).__name__}, expected a torch.Tensor"
    if x.dtype != torch.float32:
        return f"returned {x.dtype}, expected torch.float32"
    if x.ndim != ndim or tuple(x.shape[:len(leading)]) != leading:
        return f"returned shape {tuple(x.shape)}, expected {ndim} axes starting {leading}"
    if not torch.isfinite(x).all():
        return "returned non-finite values"
    return None


def task_kind(meta: dict, meta_path: Path) -> str:
    """``cls``, ``doa``, ``reg`` or ``event``, the downstream task that scores a HEAR task."""
    if meta.get("embedding_type") == "event":
        return "event"
    kind = TASK_OF_PREDICTION.get(meta.get("prediction_type"))
    if meta.get("embedding_type") != "scene" or kind is None:
        raise ValueError(f"{meta_path}: {meta.get('embedding_type')} task with prediction_type"
                         f" {meta.get('prediction_type')!r}; the evaluation takes event tasks"
                         f" and scene tasks ({', '.join(TASK_OF_PREDICTION)})")
    return kind


def folds(splits: Sequence[str]) -> List[Tuple[Optional[int], Dict[str, List[str]]]]:
    """``[(fold, {"train": [...], "valid": [...], "test": [...]})]`` of a task's splits."""
    if {"train", "valid", "test"} <= set(splits):
        return [(None, {"train": ["train"], "valid": ["valid"], "test": ["test"]})]
    k = sorted(s for s in splits if s.startswith("fold"))
    if len(k) < 3:
        raise ValueError(f"splits {sorted(splits)}: expected train/valid/test or >= 3 folds")
    return [(i, {"test": [k[i]], "valid": [k[(i + 1) % len(k)]],
                 "train": [s for j, s in enumerate(k) if j not in (i, (i + 1) % len(k))]})
            for i in range(len(k))]


def channel_input(audio: np.ndarray, model, policy: str) -> np.ndarray:
    """(C, T) or (T,) audio as the model takes it: (C, T) for a multichannel model, else (T,)."""
    want = int(getattr(model, "n_channels", 1))
    if want > 1:
        return audio if audio.ndim == 2 else np.tile(audio, (want, 1))
    return audio if audio.ndim == 1 else to_mono(audio, policy)


def label_line(kind: str, labels) -> str:
    if kind == "doa":
        az, el, _ = cart_to_sph(np.asarray(labels, dtype=np.float64))
        return f"{float(az):.3f} {float(el):.3f} 1.000"
    if kind == "reg":
        return " ".join(f"{float(v):.6g}" for v in labels)
    return " ".join(str(label).replace(" ", "_") for label in labels)


def condition(meta: dict) -> str:
    """``clean`` for a HEAR task, else the format its Nat-HEAR version was rendered in."""
    return meta["nat_hear"]["format"] if "nat_hear" in meta else "clean"


def model_request(module_name: str, model_path: str, options: Optional[dict],
                  policy: str) -> dict:
    """What identifies a model's embeddings: module, weights (path and content), options and
    the channel policy."""
    path = Path(model_path) if model_path else None
    files = (sorted(p for p in path.rglob("*") if p.is_file()) if path and path.is_dir()
             else [path] if path and path.is_file() else [])
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.relative_to(path) if path.is_dir() else f.name}"
                      f" {file_digest(f)}\n".encode())
    return {"module": module_name, "model_path": str(model_path),
            "model sha256": digest.hexdigest(), "options": options or {}, "channels": policy}


def embed_task(task_dir, module_name: str, model_path: str, out_dir, policy: str = "first",
               batch_size: int = 16, loaded=None, options: Optional[dict] = None
               ) -> Dict[str, Path]:
    """Embeddings of every split of ``task_dir`` as data dirs ``out_dir/<split>``
    (``feats.scp``, labels, ``embeddings.json``); returns split -> dir. Scene tasks get scene
    embeddings, (1, D) each; event tasks timestamp embeddings (T, D), their timestamps
    (``stamps.scp``), frame targets (``targets.scp``), the reference ``events.json`` and the
    task's ``labels.txt``.

    The embeddings are computed once per model and audio folder, in
    ``out_dir/../_audio/<digest of the folder>/<split>`` (the spatial tasks share their scene
    task's audio), and again only when the module, weights, options, channel policy or files
    change."""
    task_dir, out_dir = Path(task_dir), Path(out_dir)
    task = read_task(task_dir)
    kind = task_kind(task["meta"], task_dir / METADATA)
    module, model = loaded or load_hear_module(module_name, model_path, options)
    about = model_request(module_name, model_path, options, policy)
    audio_dir = audio_folder(task_dir, int(model.sample_rate))
    about["embedding"] = "timestamp" if kind == "event" else "scene"
    dirs = {}
    for split, labels in task["labels"].items():
        names = sorted(labels)
        ark, dim, request = embed_audio(audio_dir / split, names, (module, model), about,
                                        batch_size, out_dir.parent)
        d = out_dir / split
        dirs[split] = d
        d.mkdir(parents=True, exist_ok=True)
        with atomic_open(d / "feats.scp") as f:
            f.write((ark / "feats.scp").read_text())
        if kind == "event":
            write_event_labels(d, ark, labels, task["labels"])
        else:
            write_kv(d / TASKS[kind].label_file,
                     {n: label_line(kind, labels[n]) for n in names})
        with atomic_open(d / "embeddings.json") as f:
            json.dump({"dim": dim, "request": request, "kind": kind}, f, indent=1)
    return dirs


def embed_audio(folder: Path, names: Sequence[str], loaded, about: dict, batch_size: int,
                cache_root: Path) -> Tuple[Path, int, dict]:
    """``(dir, dim, request)``: the scene embeddings of ``folder/<names>`` in ``dir/feats.scp``
    (and ``.ark``), reused while the request (``about`` the model, and the files) is
    unchanged."""
    import kaldiio

    module, model = loaded
    real = folder.resolve()
    files = hashlib.sha256("".join(f"{n} {(real / n).stat().st_size}\n" for n in names)
                           .encode()).hexdigest()
    request = {**about, "audio": str(real), "files sha256": files}
    d = cache_root / "_audio" / hashlib.sha256(f"{real} {about['embedding']}".encode()
                                               ).hexdigest()[:16]
    done = d / "embeddings.json"
    if done.is_file() and json.loads(done.read_text())["request"] == request:
        return d, json.loads(done.read_text())["dim"], request
    d.mkdir(parents=True, exist_ok=True)
    done.unlink(missing_ok=True)
    rate = int(model.sample_rate)
    if about["embedding"] == "timestamp":
        dim = _write_timestamp_embeddings(d, module, model, real, names, about["channels"],
                                          rate)
    else:
        with atomic_path(d / "feats.ark") as ark, atomic_path(d / "feats.scp") as scp:
            with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
                for start in progress(range(0, len(names), batch_size), folder,
                                      unit_scale=batch_size):
                    group = names[start:start + batch_size]
                    for name, e in zip(group, _embed(module, model, real, group,
                                                     about["channels"], rate)):
                        writer(name, e[None, :])
                        dim = int(e.shape[-1])
            scp.write_text(scp.read_text().replace(str(ark), str(d / "feats.ark")))
    with atomic_open(done) as f:
        json.dump({"dim": dim, "request": request}, f, indent=1)
    logger.info("%s: %d embeddings (%d-dim, %s) -> %s", folder, len(names), dim, about["module"],
                d)
    return d, dim, request


def audio_folder(task_dir: Path, rate: int) -> Path:
    """The task's audio at ``rate``, or else at its highest rate (resampled when read: Nat-HEAR
    tasks exist at their bank's rate only)."""
    if (task_dir / str(rate)).is_dir():
        return task_dir / str(rate)
    rates = audio_rates(task_dir)
    if not rates:
        raise FileNotFoundError(f"{task_dir}: no audio folder (<rate>/<split>/)")
    logger.warning("%s: no %d-Hz audio; resampling its %d-Hz audio", task_dir, rate, rates[-1])
    return task_dir / str(rates[-1])


def _embed(module, model, folder: Path, names: Sequence[str], policy: str,
           rate: int) -> np.ndarray:
    clips = [channel_input(load_task_audio(folder / n, rate), model, policy) for n in names]
    length = max(c.shape[-1] for c in clips)
    batch = np.stack([np.pad(c, [(0, 0)] * (c.ndim - 1) + [(0, length - c.shape[-1])])
                      for c in clips])
    with torch.no_grad():
        return module.get_scene_embeddings(torch.from_numpy(batch), model).float().numpy()


def progress(items, folder: Path, unit_scale: int = 1):
    """``items`` with a progress bar of the clips embedded (on a terminal only)."""
    from tqdm import tqdm

    return tqdm(items, desc=f"embedding {folder.parent.name}/{folder.name}", unit="clip",
                unit_scale=unit_scale, disable=None, leave=False)


def _write_timestamp_embeddings(d: Path, module, model, folder: Path, names: Sequence[str],
                                policy: str, rate: int) -> int:
    """``d/feats.{ark,scp}`` (T, D) and ``d/stamps.{ark,scp}`` (T,) ms, one file at a time (no
    padding frames); returns D."""
    import kaldiio

    if not hasattr(module, "get_timestamp_embeddings"):
        raise ValueError(f"{module.__name__}: no get_timestamp_embeddings, which event tasks"
                         " need")
    with atomic_path(d / "feats.ark") as ark, atomic_path(d / "feats.scp") as scp, \
            atomic_path(d / "stamps.ark") as s_ark, atomic_path(d / "stamps.scp") as s_scp:
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as feats, \
                kaldiio.WriteHelper(f"ark,scp:{s_ark},{s_scp}") as stamps:
            for name in progress(names, folder):
                audio = channel_input(load_task_audio(folder / name, rate), model, policy)
                with torch.no_grad():
                    emb, ts = module.get_timestamp_embeddings(torch.from_numpy(audio[None]),
                                                              model)
                feats(name, emb[0].float().numpy())
                stamps(name, ts[0].float().numpy())
                dim = int(emb.shape[-1])
        scp.write_text(scp.read_text().replace(str(ark), str(d / "feats.ark")))
        s_scp.write_text(s_scp.read_text().replace(str(s_ark), str(d / "stamps.ark")))
    return dim


def write_event_labels(d: Path, cache: Path, labels: dict, all_labels: dict) -> None:
    """An event split's ``stamps.scp``, frame ``targets.{ark,scp}``, ``events.json`` and the
    task's ``labels.txt`` (every split's labels, sorted)."""
    import kaldiio

    from espnet2_gram.downstream.events.metrics import frame_targets, write_events

    vocabulary = sorted({e["label"] for split in all_labels.values() for events in
                         split.values() for e in events})
    events = {n: [(float(e["start"]), float(e["end"]), e["label"]) for e in labels[n]]
              for n in labels}
    stamps = dict(kaldiio.load_scp(str(cache / "stamps.scp")))
    with atomic_open(d / "stamps.scp") as f:
        f.write((cache / "stamps.scp").read_text())
    with atomic_path(d / "targets.ark") as ark, atomic_path(d / "targets.scp") as scp:
        with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
            for name in sorted(labels):
                writer(name, frame_targets(events[name], stamps[name], vocabulary))
        scp.write_text(scp.read_text().replace(str(ark), str(d / "targets.ark")))
    write_events(d / "events.json", events)
    with atomic_open(d / "labels.txt") as f:
        f.write("".join(f"{label}\n" for label in vocabulary))


def fold_data_dir(split_dirs: Dict[str, Path], splits: Sequence[str], out: Path) -> Path:
    """One data dir holding ``splits`` (their scp and label lines; the arks stay where they are);
    a single split is used as it is."""
    if len(splits) == 1:
        return split_dirs[splits[0]]
    out.mkdir(parents=True, exist_ok=True)
    for name in ("feats.scp", "stamps.scp", "embeddings.json", "labels.txt", "events.json",
                 *(t.label_file for t in TASKS.values())):
        parts = [split_dirs[s] / name for s in splits if (split_dirs[s] / name).is_file()]
        if not parts:
            continue
        if name == "events.json":  # the files of every split
            text = json.dumps({k: v for p in parts for k, v in json.loads(p.read_text())
                               .items()}, indent=1)
        elif name in ("embeddings.json", "labels.txt"):  # the same in every split
            text = parts[0].read_text()
        else:
            text = "".join(p.read_text() for p in parts)
        with atomic_open(out / name) as f:
            f.write(text)
    return out


def task_runs(task_dir: Path, split_dirs: Dict[str, Path], model_name: str, out_root: Path,
              seeds: Sequence[int], grid: Sequence[str], configs: Dict[str, str],
              train_args: Sequence[str] = ()) -> list:
    """The downstream runs (``espnet2_gram.downstream.runs.Run``) of one embedded task."""
    from espnet2_gram.downstream.runs import Run

    meta = json.loads((task_dir / METADATA).read_text())
    kind = task_kind(meta, task_dir / METADATA)
    name = meta.get("task_name", task_dir.name)
    cond = condition(meta)
    fmt = "mono" if cond == "clean" else cond
    runs = []
    for fold, parts in folds(list(split_dirs)):
        tag = "" if fold is None else f"_fold{fold}"
        dirs = {role: fold_data_dir(split_dirs, splits, out_root / "folds" / model_name / cond
                                    / name / f"{role}{tag}") for role, splits in parts.items()}
        for seed in seeds:
            runs.append(Run(
                task=kind, mode="probe", model=model_name, format=fmt, dataset=name,
                train_dir=str(dirs["train"]), valid_dir=str(dirs["valid"]),
                test_dir=str(dirs["test"]), task_config=configs[kind],
                exp_dir=str(out_root / "exp"
                            / f"{kind}_{name}_{cond}_{model_name}{tag}_seed{seed}"),
                seed=seed, fold=fold, grid=list(grid), train_args=list(train_args),
                multilabel=meta.get("prediction_type") == "multilabel"))
    return runs


def evaluate(task_dirs: Sequence, module_name: str, model_path: str, model_name: str, out_root,
             seeds: Sequence[int] = (0, 1, 2), policy: str = "first",
             grid: Sequence[str] = tuple(HEAR_GRID), configs: Dict[str, str] = None,
             batch_size: int = 16, options: Optional[dict] = None,
             train_args: Sequence[str] = ()) -> Path:
    """Embed, train and score every task for one HEAR module; writes the HEAR / Nat-HEAR table
    (``out_root/NAT_HEAR.md``, :mod:`espnet2_gram.nat_hear.table`) and returns RESULTS.md of
    all the runs under ``out_root/exp`` (other modules' runs included)."""
    from espnet2_gram.downstream.runs import execute
    from espnet2_gram.nat_hear.table import record_task, write_table
    from espnet2_gram.report.tables import write_report

    if policy not in CHANNEL_POLICIES:
        raise ValueError(f"--channels: expected one of {list(CHANNEL_POLICIES)}, got {policy!r}")
    if not seeds:
        raise ValueError("--seeds: expected at least one seed")
    out_root = Path(out_root)
    metas = {}
    for task_dir in map(Path, task_dirs):  # every task checked before any work
        metas[task_dir] = read_task(task_dir)["meta"]
        kind = task_kind(metas[task_dir], task_dir / METADATA)
        if kind not in (configs or {}):
            raise ValueError(f"{task_dir}: a {kind} task, but no --{kind}_config was given")
    loaded = load_hear_module(module_name, model_path, options)
    for task_dir, meta in metas.items():
        record_task(out_root, meta.get("task_name", task_dir.name),
                    meta.get("prediction_type", ""))
        split_dirs = embed_task(task_dir, module_name, model_path,
                                out_root / "emb" / model_name / condition(meta)
                                / meta.get("task_name", task_dir.name), policy, batch_size,
                                loaded, options)
        for run in task_runs(task_dir, split_dirs, model_name, out_root, seeds, grid, configs,
                             train_args):
            execute(run)
    write_table(out_root)
    return write_report(out_root / "exp")
