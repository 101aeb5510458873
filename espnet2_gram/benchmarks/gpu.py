"""One prepared GPU benchmark of GRAM pretraining, end to end within a time budget.

    python -m espnet2_gram.benchmarks.gpu --out_dir exp/gpu_benchmark [--tiny]
        [--device cuda|cpu] [--budget_s 420] [--gramt_source DIR] [--compile auto|true|false]

(``egs2/gram/scripts/gpu_benchmark.sh`` wraps it for a bare GPU machine.) Sections, in order
of importance; each is guarded (a failure is recorded as an error string and the others run)
and checks the time left (a section that would not fit is skipped with the reason):

ceiling    the measured matrix rate: bf16 8192^3 matmuls timed with CUDA events (float32 and
           small on the CPU), TFLOP/s; the denominator of every MFU below.
data       made on the spot under ``OUT/data``: an RIR bank with ``make_rir_bank`` (method
           early, jobs in parallel, merged), a noise set and a source set (synthetic clips,
           Kaldi-style wav.scp); then the scenes/s of the data loader alone (ESPnet's dataset +
           ``SceneSimulator`` + our collate, a torch DataLoader) with the workers convolving
           (mix_on_device=False) and with the batch carrying ingredients (mix_on_device=True),
           plus the device's own rate of mixing those batches.
sweep      training steps of the paper model (``--tiny``: demo) on batches from that loader
           (mix_on_device ingredients given to ``model(**batch)`` as ESPnet's trainer does, so
           scene synthesis is inside the step), bf16 autocast, fused AdamW, grad clipping, at
           several batch sizes, eager and after ``model.compile_parts()``: step time (CUDA
           events, median after warm-up; compile time apart), crops/s, MFU, peak memory, the
           time blocked on the loader per step. The SDPA kernels the encoder uses are recorded.
trainer    ESPnet's trainer (``espnet2_gram.bin.gram_train``) as a subprocess on a data
           directory of the source set: two epochs (the last epoch's loss must be below the
           first's), then ``--resume true`` with one more epoch (must start at epoch 3).
attention  the decoder's windowed heads computed as windows vs the dense (heads, N, N) mask.
gramt      with ``--gramt_source``: ``espnet2_gram.benchmarks.gramt.side_by_side``.

Outputs ``OUT/gpu_benchmark.json`` (everything, with the environment) and
``OUT/gpu_benchmark.md`` (one table per section), rewritten atomically after every section.
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from espnet2_gram.formats import num_channels
from espnet2_gram.utils.cli import run
from espnet2_gram.utils.fileio import atomic_open

REPO = Path(__file__).resolve().parents[2]
PAPER_CONFIG = "conf/paper/pretrain_binaural.yaml"
DEMO_CONFIG = "conf/demo/pretrain_binaural.yaml"
BANK_CONFIG = "conf/demo/rir_bank.yaml"
SECTIONS = ("ceiling", "data", "sweep", "trainer", "attention", "gramt")

# What each size means, GPU vs --tiny (the CPU test of the script itself).
SIZES = {
    "full": dict(
        config=PAPER_CONFIG, matmul=8192, matmul_dtype="bfloat16", matmul_repeats=20,
        bank_packs=32, bank_jobs=8, sources=48, valid_sources=8, source_extra_s=2.0, noises=6,
        noise_s=15.0, loader_batch=16, loader_batches=64, loader_cap_s=12.0, crops_per_clip=16,
        sweep_clips=(16, 48, 96), warmup=3, steps=(5, 30), flop_clips=(1, 2),
        trainer_batch=16, trainer_iters=100, attention_crops=768, attention_reps=10,
        gramt_crops=256, gramt_steps=10,
    ),
    "tiny": dict(
        config=DEMO_CONFIG, matmul=512, matmul_dtype="float32", matmul_repeats=5,
        bank_packs=4, bank_jobs=2, sources=8, valid_sources=2, source_extra_s=0.5, noises=2,
        noise_s=3.0, loader_batch=2, loader_batches=4, loader_cap_s=5.0, crops_per_clip=2,
        sweep_clips=(2,), warmup=1, steps=(2, 3), flop_clips=(1, 2),
        trainer_batch=2, trainer_iters=3, attention_crops=4, attention_reps=2,
        gramt_crops=2, gramt_steps=1,
    ),
}

# Seconds a section needs at least to start, and seconds kept free for the later, more
# important sections (a section's allowance is the time left minus its reserve).
PLAN = {
    "full": {"ceiling": (5, 300), "data": (30, 260), "sweep": (60, 150), "trainer": (70, 20),
             "attention": (10, 10), "gramt": (15, 3)},
    "tiny": {"ceiling": (1, 60), "data": (5, 50), "sweep": (5, 40), "trainer": (20, 5),
             "attention": (1, 2), "gramt": (2, 1)},
}


# The forward ATen op of each SDPA backend: the one a profile shows is the kernel that ran.
SDPA_OPS = {
    "aten::_scaled_dot_product_flash_attention": "flash",
    "aten::_scaled_dot_product_flash_attention_for_cpu": "flash (CPU)",
    "aten::_scaled_dot_product_efficient_attention": "memory-efficient",
    "aten::_scaled_dot_product_cudnn_attention": "cuDNN",
    "aten::_scaled_dot_product_attention_math": "math (unfused)",
}


def wait_jobs(procs, timeout) -> list:
    """Wait for each ``(process, log, job)``, killing one that outlives ``timeout()`` seconds;
    closes the logs; returns the numbers of the jobs that failed."""
    failed = []
    for proc, log, j in procs:
        try:
            rc = proc.wait(timeout=timeout())
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
        if rc != 0:
            failed.append(j)
    return failed


class Skip(Exception):
    """A section (or part) that does not fit the budget or lacks what it needs."""


class SectionError(RuntimeError):
    """A section's failed check, with the figures it measured before it (kept in the JSON)."""

    def __init__(self, message: str, data: dict):
        super().__init__(message)
        self.data = data


def first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}"[:500]


class Benchmark:
    def __init__(self, args):
        self.args = args
        self.t0 = time.perf_counter()
        self.size = "tiny" if args.tiny else "full"
        self.s = SIZES[self.size]
        self.plan = PLAN[self.size]
        self.device = torch.device(args.device)
        self.cuda = self.device.type == "cuda"
        self.out = Path(args.out_dir).resolve()
        self.work = Path(args.work_dir).resolve() if args.work_dir else self.out / "work"
        config = Path(args.config or self.s["config"])
        self.config = str(config if config.is_absolute() else (REPO / config).resolve())
        self.compile = {"auto": self.cuda, "true": True, "false": False}[args.compile]
        self.amp_dtype = torch.bfloat16 if self.cuda else None
        self.results = {"sections": {}, "settings": {
            "size": self.size, "device": str(self.device), "budget_s": args.budget_s,
            "config": os.path.relpath(self.config, REPO), "compile": self.compile,
            "gramt_source": bool(args.gramt_source)}}
        self.ceiling_flops = None
        self.data = {}

    # ------------------------------------------------------------------ plumbing
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.args.budget_s - self.elapsed()

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')} +{self.elapsed():6.1f}s] {msg}", flush=True)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def autocast(self):
        if self.amp_dtype is None:
            return torch.autocast("cpu", enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def env(self) -> dict:
        env = {"python": platform.python_version(), "torch": torch.__version__,
               "numpy": np.__version__, "cpu_count": os.cpu_count(),
               "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
               "cuda_available": torch.cuda.is_available(), "git_commit": None,
               "shm_free_gb": round(shm_free_bytes() / 2**30, 1) if shm_free_bytes() else None}
        try:
            import espnet
            env["espnet"] = getattr(espnet, "__version__", "?")
        except Exception as e:  # recorded, the sections that need it fail on their own
            env["espnet"] = f"not importable ({first_line(e)})"
        if self.cuda:
            props = torch.cuda.get_device_properties(self.device)
            env.update(cuda_device=props.name, cuda_memory_gb=round(props.total_memory / 2**30, 1),
                       cuda_version=torch.version.cuda, cudnn=torch.backends.cudnn.version(),
                       bf16_supported=torch.cuda.is_bf16_supported(),
                       sm_count=props.multi_processor_count)
        try:
            env["git_commit"] = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                timeout=10).stdout.strip() or None
        except Exception:
            pass
        return env

    def section(self, name: str, fn) -> None:
        need, reserve = self.plan[name]
        allowance = self.left() - reserve
        entry = {"status": "ok"}
        start = self.elapsed()
        if allowance < need:
            entry = {"status": "skipped", "reason": f"{allowance:.0f} s left for it (budget"
                     f" {self.args.budget_s:.0f} s, {reserve} s kept for later sections), needs"
                     f" at least {need} s"}
            self.log(f"{name}: skipped ({entry['reason']})")
        else:
            self.log(f"{name}: start ({allowance:.0f} s allowed)")
            try:
                entry.update(fn(allowance))
            except Skip as e:
                entry = {"status": "skipped", "reason": str(e)}
                self.log(f"{name}: skipped ({e})")
            except Exception as e:  # recorded; the next sections still run
                entry = {**getattr(e, "data", {}), "status": "error", "error": first_line(e),
                         "traceback": traceback.format_exc()[-4000:]}
                self.log(f"{name}: ERROR {first_line(e)}")
                if self.cuda:
                    torch.cuda.empty_cache()
        entry["seconds"] = round(self.elapsed() - start, 2)
        self.results["sections"][name] = entry
        if self.cuda:  # what a section built goes before the next one (the trainer's process)
            import gc
            gc.collect()
            torch.cuda.empty_cache()
        self.log(f"{name}: {entry['status']} in {entry['seconds']:.1f} s")
        self.write()

    def write(self) -> None:
        self.results["elapsed_s"] = round(self.elapsed(), 2)
        self.out.mkdir(parents=True, exist_ok=True)
        with atomic_open(self.out / "gpu_benchmark.json") as f:
            json.dump(self.results, f, indent=2, default=str)
        with atomic_open(self.out / "gpu_benchmark.md") as f:
            f.write(render_markdown(self.results))

    def finish(self) -> None:
        """Logs and the trainer's config into OUT/logs; the work folder (audio, the RIR bank,
        checkpoints: gigabytes with the paper model) removed unless --keep_work."""
        import shutil

        logs = self.out / "logs"
        for pattern, dest in (("data/rir_bank/log/*.log", "rir_bank"),
                              ("trainer/*.log", "trainer"), ("trainer/train.yaml", "trainer"),
                              ("trainer/exp/config.yaml", "trainer/exp")):
            for f in self.work.glob(pattern):
                (logs / dest).mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, logs / dest / f.name)
        if not self.args.keep_work and self.work.exists():
            shutil.rmtree(self.work, ignore_errors=True)
            self.log(f"removed the work folder {self.work} (--keep_work to keep it)")

    def subprocess_env(self) -> dict:
        path = os.environ.get("PYTHONPATH", "")
        return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{path}" if path else str(REPO),
                "PYTHONUNBUFFERED": "1"}

    def run_logged(self, cmd, log_path: Path, timeout: float) -> subprocess.CompletedProcess:
        """Run ``cmd`` with its output in ``log_path``; a timeout kills its process group."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                    env=self.subprocess_env(), start_new_session=True)
            try:
                rc = proc.wait(timeout=max(1.0, timeout))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise TimeoutError(f"{' '.join(map(str, cmd[:3]))} ran past {timeout:.0f} s"
                                   f" (log {log_path})")
        text = log_path.read_text(errors="replace")
        if rc != 0:
            tail = " | ".join(text.strip().splitlines()[-3:])
            raise RuntimeError(f"{' '.join(map(str, cmd[:3]))} exited {rc} (log {log_path}):"
                               f" {tail}")
        return subprocess.CompletedProcess(cmd, rc, text, "")

    # ------------------------------------------------------------------ a. ceiling
    def ceiling(self, allowance: float) -> dict:
        n, reps = self.s["matmul"], self.s["matmul_repeats"]
        dtype = getattr(torch, self.s["matmul_dtype"]) if self.cuda else torch.float32
        a = torch.randn(n, n, device=self.device, dtype=dtype)
        b = torch.randn(n, n, device=self.device, dtype=dtype)
        for _ in range(3):
            a @ b
        self.sync()
        times = []
        if self.cuda:
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
                      for _ in range(reps)]
            for start, end in events:
                start.record()
                a @ b
                end.record()
            torch.cuda.synchronize()
            times = [s.elapsed_time(e) / 1000 for s, e in events]
        else:
            for _ in range(reps):
                t = time.perf_counter()
                a @ b
                times.append(time.perf_counter() - t)
        flop = 2 * n ** 3
        self.ceiling_flops = flop / statistics.median(times)
        return {"dtype": str(dtype).replace("torch.", ""), "size": n, "repeats": reps,
                "tflops_median": self.ceiling_flops / 1e12,
                "tflops_best": flop / min(times) / 1e12,
                "timing": "CUDA events per matmul" if self.cuda else "perf_counter per matmul"}

    # ------------------------------------------------------------------ b. data
    def load_args(self, mix_on_device: bool, **scene):
        """ESPnet's parsed arguments of the config, with the bank and noise of this run."""
        from espnet2_gram.tasks.gram import GRAMTask

        argv = ["--config", self.config]
        conf = {"bank_dir": self.data["bank_dir"], "noise_scp": self.data["noise_scp"],
                "mix_on_device": mix_on_device, **scene}
        for k, v in conf.items():
            argv += ["--scene_conf", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
        return GRAMTask.get_parser().parse_args(argv)

    def make_loader(self, clips: int, batches: int, mix_on_device: bool, workers: int, seed=0):
        """A torch DataLoader as ESPnet's trainer builds it: ESPnetDataset with the task's
        preprocess (SceneSimulator) and collate, ``batches`` random batches of ``clips``."""
        from espnet2.train.dataset import ESPnetDataset

        from espnet2_gram.tasks.gram import GRAMTask

        args = self.load_args(mix_on_device)
        dataset = ESPnetDataset([(self.data["train_scp"], "speech", "sound")],
                                preprocess=GRAMTask.build_preprocess_fn(args, train=True))
        uids = list(self.data["train_uids"])
        rng = np.random.default_rng(seed)
        sampler = [[uids[i] for i in rng.integers(len(uids), size=clips)] for _ in range(batches)]
        extra = {"prefetch_factor": 2, "persistent_workers": False} if workers > 0 else {}
        return torch.utils.data.DataLoader(
            dataset, batch_sampler=sampler, collate_fn=GRAMTask.build_collate_fn(args, True),
            num_workers=workers, pin_memory=self.cuda, **extra)

    def workers(self, clips: int = 0, mix_on_device: bool = True) -> int:
        """Loader workers: min(16, CPUs) (tiny: 0 on the CPU), fewer when the batches in
        flight (2 per worker) would fill more than half of the free /dev/shm."""
        if self.args.tiny:
            return 1 if self.cuda else 0
        workers = min(16, os.cpu_count() or 1)
        free = shm_free_bytes()
        if clips and free and self.data:
            d = self.data
            per_clip = (4 * (2 * d["samples"] + 2 * d["rir_samples"] * d["channels"])
                        if mix_on_device else 4 * d["samples"] * d["channels"])
            cap = int(free * 0.5 // (2 * clips * per_clip))
            if cap < workers:
                self.log(f"{workers} workers x 2 batches of {clips} clips would fill /dev/shm"
                         f" ({free / 2**30:.1f} GB free): {max(1, cap)} workers")
                workers = max(1, cap)
        return workers

    def data_section(self, allowance: float) -> dict:
        import yaml

        root = self.work / "data"
        deadline = self.elapsed() + allowance
        cfg = yaml.safe_load(Path(self.config).read_text())
        fs = int(cfg["frontend_conf"]["fs"])
        fmt = cfg["frontend"]
        clip_s = float(cfg["scene_conf"]["clip_seconds"])
        out = {"fs": fs, "format": fmt, "clip_seconds": clip_s}
        # RIR bank with our own tool, its jobs in parallel; the noise and source sets are
        # written and ESPnet is imported meanwhile.
        t = time.perf_counter()
        bank = root / "rir_bank"
        procs, jobs = self.start_bank_jobs(bank, fmt, fs)
        try:
            scps = self.write_sets(root, clip_s, fs, out)
            import espnet2.train.dataset  # noqa: F401  (imports overlap the bank jobs)
            import espnet2_gram.tasks.gram  # noqa: F401
        finally:
            failed = wait_jobs(procs, lambda: max(5.0, deadline - self.elapsed()))
        method = "early"
        if failed:
            # The rest of the benchmark still gets scenes: a synthetic bank (direct path with
            # interaural delays and an exponential tail) in the same format, recorded as such.
            text = (bank / "log" / f"make_rir_bank.{failed[0]}.log").read_text(errors="replace")
            reason = (f"make_rir_bank jobs {failed} failed: "
                      + " | ".join(text.strip().splitlines()[-2:]))[:600]
            out["bank_error"] = reason
            self.log(f"data: {reason}; writing a synthetic bank instead")
            method = "synthetic (make_rir_bank failed, see bank_error)"
            write_synthetic_bank(bank, self.s["bank_packs"], fs, fmt, keep=bank / "log")
        from espnet2_gram.simulation.rir_bank import merge_bank  # what --merge true runs

        info = merge_bank(bank)
        out["bank"] = {"packs": info["num_packs"], "rirs": info["num_rirs"], "method": method,
                       "jobs": jobs, "config": BANK_CONFIG, "seconds": time.perf_counter() - t,
                       "rt60_target_mean": info["rt60_target_mean"]}
        self.log(f"data: bank of {info['num_packs']} packs ({info['num_rirs']} RIRs) in"
                 f" {out['bank']['seconds']:.1f} s (with the sets and imports alongside)")
        noise_scp, train_scp, valid_scp = scps
        self.data = {"bank_dir": str(bank), "noise_scp": str(noise_scp),
                     "train_scp": str(train_scp), "valid_scp": str(valid_scp),
                     "train_uids": [ln.split()[0] for ln in train_scp.read_text().splitlines()],
                     "samples": int(clip_s * fs), "channels": num_channels(fmt),
                     "rir_samples": max_rir_samples(bank)}
        out["loader"] = self.time_loaders(deadline)
        return out

    def start_bank_jobs(self, bank: Path, fmt: str, fs: int) -> tuple:
        """``(processes with their logs and job numbers, job count)`` of make_rir_bank."""
        s = self.s
        if bank.exists():
            import shutil
            shutil.rmtree(bank)
        (bank / "log").mkdir(parents=True)
        jobs = max(1, min(s["bank_jobs"], os.cpu_count() or 1))
        common = [sys.executable, "-m", "espnet2_gram.bin.make_rir_bank", "--config",
                  str(REPO / BANK_CONFIG), "--format", fmt, "--fs", str(fs), "--method", "early",
                  "--out_dir", str(bank), "--num_packs", str(s["bank_packs"]), "--seed", "1",
                  "--prefix", "bench_", "--shard_size", "2", "--num_jobs", str(jobs)]
        procs = []
        for j in range(1, jobs + 1):
            log = open(bank / "log" / f"make_rir_bank.{j}.log", "w")
            procs.append((subprocess.Popen(common + ["--job_index", str(j)], stdout=log,
                                           stderr=subprocess.STDOUT, cwd=REPO,
                                           env=self.subprocess_env()), log, j))
        return procs, jobs

    def write_sets(self, root: Path, clip_s: float, fs: int, out: dict) -> tuple:
        """The noise, training and validation source sets: their scp files."""
        s = self.s
        t_sets = time.perf_counter()
        noise_scp = write_noise_set(root / "noise", s["noises"], s["noise_s"], fs)
        train_scp = write_source_set(root / "train", "src", s["sources"], clip_s,
                                     s["source_extra_s"], fs, seed=1)
        valid_scp = write_source_set(root / "valid", "dev", s["valid_sources"], clip_s,
                                     s["source_extra_s"], fs, seed=2)
        out["sets"] = {"noise_files": s["noises"], "noise_seconds": s["noise_s"],
                       "train_clips": s["sources"], "valid_clips": s["valid_sources"],
                       "clip_seconds": f"{clip_s:g}-{clip_s + s['source_extra_s']:g}",
                       "seconds": time.perf_counter() - t_sets}
        self.log(f"data: {s['sources']} + {s['valid_sources']} source clips and"
                 f" {s['noises']} noise files in {out['sets']['seconds']:.1f} s")
        return noise_scp, train_scp, valid_scp

    def time_loaders(self, deadline: float) -> list:
        """The loader alone, both ways of mixing; a failure of either is an error."""
        rows = []
        for mix_on_device in (True, False):
            budget = min(self.s["loader_cap_s"], (deadline - self.elapsed()) / 2)
            if budget < 1:
                rows.append({"mix_on_device": mix_on_device, "status": "skipped",
                             "reason": "data section out of time"})
                continue
            try:
                rows.append(self.time_loader(
                    mix_on_device, self.workers(self.s["loader_batch"], mix_on_device), budget))
            except Exception as e:
                rows.append({"mix_on_device": mix_on_device, "status": "error",
                             "error": first_line(e)})
                self.log(f"data: loader mix_on_device={mix_on_device} ERROR {first_line(e)}")
        errors = [r for r in rows if r.get("status") == "error"]
        if errors:
            raise RuntimeError(f"the loader failed: {errors[0]['error']}")
        return rows

    def time_loader(self, mix_on_device: bool, workers: int, cap_s: float) -> dict:
        s = self.s
        loader = self.make_loader(s["loader_batch"], s["loader_batches"], mix_on_device, workers,
                                  seed=3)
        t = time.perf_counter()
        it = iter(loader)
        first = next(it)
        startup = time.perf_counter() - t
        t = time.perf_counter()
        n = 0
        last = first
        for batch in it:
            n += 1
            last = batch
            if time.perf_counter() - t > cap_s:
                break
        seconds = time.perf_counter() - t
        del it
        row = {"mix_on_device": mix_on_device, "status": "ok", "workers": workers,
               "pin_memory": self.cuda, "batch_clips": s["loader_batch"], "batches": n,
               "first_batch_s": startup,
               "scenes_per_s": n * s["loader_batch"] / seconds if n else None}
        if mix_on_device:
            row.update(self.time_device_mixing(last[1]))
        self.log(f"data: loader mix_on_device={mix_on_device}: {row['scenes_per_s'] or 0:.1f}"
                 f" scenes/s with {workers} workers")
        return row

    def time_device_mixing(self, batch: dict) -> dict:
        from espnet2_gram.scene.device_mixing import mix_if_needed

        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        reps = 10 if self.cuda else 2
        mix_if_needed(batch["speech"], batch)
        self.sync()
        t = time.perf_counter()
        for _ in range(reps):
            mix_if_needed(batch["speech"], batch)
        self.sync()
        seconds = (time.perf_counter() - t) / reps
        return {"device_mix_ms_per_batch": seconds * 1e3,
                "device_mix_scenes_per_s": batch["speech"].shape[0] / seconds}

    # ------------------------------------------------------------------ c. sweep
    def build_model(self, crops_per_clip: int):
        from espnet2_gram.tasks.gram import build_gram_model

        model = build_gram_model(self.config, model_conf={"crops_per_clip": crops_per_clip})
        return model.to(self.device).train()

    def optimizer(self, model):
        import yaml

        conf = yaml.safe_load(Path(self.config).read_text()).get("optim_conf", {})
        kwargs = {"lr": conf.get("lr", 2e-4), "betas": tuple(conf.get("betas", (0.9, 0.95))),
                  "weight_decay": conf.get("weight_decay", 0.01)}
        if self.cuda:
            kwargs["fused"] = True
        return torch.optim.AdamW(model.parameters(), **kwargs)

    def to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}

    def train_step(self, model, optim, batch: dict):
        optim.zero_grad(set_to_none=True)
        with self.autocast():
            loss, _, _ = model(**self.to_device(batch))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()
        return loss.detach()

    def count_flops(self, model, optim, crops_per_clip: int) -> dict:
        """FLOPs of forward + backward, counted with FlopCounterMode at two clip counts of
        real loader batches: affine in clips (the per-clip frontend plus per-crop model)."""
        from torch.utils.flop_counter import FlopCounterMode

        counts = {}
        for clips in self.s["flop_clips"]:
            loader = self.make_loader(clips, 1, True, 0, seed=5)
            batch = next(iter(loader))[1]
            optim.zero_grad(set_to_none=True)
            with FlopCounterMode(display=False) as counter:
                with self.autocast():
                    loss, _, _ = model(**self.to_device(batch))
                loss.backward()
            counts[clips] = counter.get_total_flops()
        optim.zero_grad(set_to_none=True)
        (c1, f1), (c2, f2) = sorted(counts.items())
        per_clip = (f2 - f1) / (c2 - c1)
        return {"flops_per_clip": per_clip, "flops_fixed": f1 - per_clip * c1,
                "flops_per_crop": per_clip / crops_per_clip, "counted_at_clips": list(counts),
                "method": "FlopCounterMode on forward + backward of real batches at"
                          f" {c1} and {c2} clips x {crops_per_clip} crops, affine in clips"
                          " (matmul/attention FLOPs; FFTs, elementwise and the optimiser"
                          " not counted)"}

    def sdpa_backends(self, model) -> dict:
        """Which SDPA kernels the encoder can use (each backend alone on one forward) and
        which ones a default forward + backward of the encoder and of the decoder ran."""
        from torch.nn.attention import SDPBackend, sdpa_kernel

        enc = model.encoder
        n = 8 if self.cuda else 2
        crops = torch.randn(n, enc.in_channels, enc.n_mels, enc.crop_frames, device=self.device)
        mask = model.masking(n, enc.grid, device=self.device)
        out = {"forced": {}}
        names = ["FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"]
        for name in names:
            backend = getattr(SDPBackend, name, None)
            if backend is None:
                out["forced"][name] = "not in this torch"
                continue
            try:
                with torch.no_grad(), sdpa_kernel([backend]), self.autocast():
                    enc(crops, mask)
                self.sync()
                out["forced"][name] = "runs"
            except Exception as e:
                out["forced"][name] = f"fails: {first_line(e)[:100]}"
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.cuda else [])
        visible = enc.num_patches - model.masking.num_masked(enc.grid)
        parts = {"encoder": lambda: enc(crops, mask, visible),
                 "decoder": lambda: model.decoder(enc(crops, mask, visible).detach(), mask,
                                                  visible)}
        for part, forward in parts.items():
            with profile(activities=activities) as prof:
                with self.autocast():
                    y = forward()
                y.float().square().mean().backward()
                self.sync()
            ops = sorted({e.key for e in prof.key_averages() if e.key in SDPA_OPS})
            out[f"{part}_ops"] = ops
            out[f"{part}_used"] = ", ".join(SDPA_OPS[k] for k in ops) or "none (no SDPA call)"
        model.zero_grad(set_to_none=True)
        return out

    def sizes_and_deadline(self, allowance: float):
        """The run's sizes and the end of a section that needs the data section's output."""
        if not self.data:
            raise Skip("no data (the data section did not finish)")
        return self.s, self.elapsed() + allowance

    def sweep(self, allowance: float) -> dict:
        s, deadline = self.sizes_and_deadline(allowance)
        k = s["crops_per_clip"]
        model = self.build_model(k)
        optim = self.optimizer(model)
        out = {"config": os.path.relpath(self.config, REPO), "crops_per_clip": k,
               "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
               "optimizer": "AdamW" + (" (fused)" if self.cuda else ""), "grad_clip": 5.0,
               "workers": self.workers(), "mix_on_device": True,
               "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
               "ceiling_tflops": self.ceiling_flops / 1e12 if self.ceiling_flops else None,
               "notes": "loss values are read after the timed loop (no host sync in it)"}
        out["flops"] = self.count_flops(model, optim, k)
        self.log(f"sweep: {out['flops']['flops_per_crop'] / 1e9:.2f} GFLOP per crop (fwd+bwd)")
        try:
            out["sdpa"] = self.sdpa_backends(model)
            self.log(f"sweep: SDPA encoder {out['sdpa']['encoder_used']}, decoder"
                     f" {out['sdpa']['decoder_used']}; forced: {out['sdpa']['forced']}")
        except Exception as e:
            out["sdpa"] = {"error": first_line(e)}
        points = []
        clips_list = list(s["sweep_clips"])
        plan = [(False, c) for c in clips_list]
        plan += [(True, c) for c in sorted(clips_list, reverse=True)]
        compiled, compile_estimate = False, 90.0 if self.cuda else 60.0
        for i, (use_compile, clips) in enumerate(plan):
            row = {"compile": use_compile, "clips": clips, "crops": clips * k}
            left = deadline - self.elapsed()
            todo = len(plan) - i
            try:
                if use_compile and not self.compile:
                    raise Skip(f"compile off (--compile {self.args.compile} on {self.device.type})")
                if use_compile and not compiled:
                    if not hasattr(model, "compile_parts"):
                        raise Skip("ESPnetGRAMModel.compile_parts not available")
                    if left < compile_estimate + 10:
                        raise Skip(f"{left:.0f} s left in the sweep, compiling needs about"
                                   f" {compile_estimate:.0f} s")
                    model.compile_parts()
                    compiled = True
                elif left < ((compile_estimate if use_compile else 8)
                             * (0.5 if self.args.tiny else 1)):
                    raise Skip(f"{left:.0f} s left in the sweep")
                share = left / todo if not use_compile else left - compile_estimate * 0.3
                row.update(self.sweep_point(model, optim, clips, k, share, out["flops"],
                                            compiled))
                if use_compile and row.get("compile_s"):
                    compile_estimate = row["compile_s"] + 10
                row["status"] = "ok"
            except Skip as e:
                row.update(status="skipped", reason=str(e))
            except Exception as e:
                row.update(status="error", error=first_line(e))
                if self.cuda:
                    torch.cuda.empty_cache()
            self.log(f"sweep: {self.describe_point(row)}")
            points.append(row)
            self.results["sections"]["sweep"] = {"status": "running", **out, "points": points}
            self.write()
        out["points"] = points
        done = [p for p in points if p["status"] == "ok"]
        if not done:
            raise SectionError("no sweep point ran: " + "; ".join(
                p.get("error") or p.get("reason", "") for p in points), out)
        errors = [p for p in points if p["status"] == "error" and not p["compile"]]
        if errors:
            raise SectionError(f"sweep point {errors[0]['clips']} clips failed:"
                               f" {errors[0]['error']}", out)
        return out

    def describe_point(self, row: dict) -> str:
        head = f"{'compiled' if row['compile'] else 'eager'} {row['clips']} clips x" \
               f" {row['crops'] // row['clips']}"
        if row.get("status") != "ok":
            return f"{head}: {row.get('status')} {row.get('reason') or row.get('error')}"
        mfu = f", MFU {100 * row['mfu']:.1f}%" if row.get("mfu") is not None else ""
        mem = f", peak {row['peak_mem_gb']:.1f} GB" if row.get("peak_mem_gb") is not None else ""
        return (f"{head}: step {1e3 * row['step_s']:.1f} ms, {row['crops_per_s']:.0f} crops/s"
                f"{mfu}{mem}, loader wait {1e3 * row['data_wait_s']:.1f} ms/step")

    def sweep_point(self, model, optim, clips: int, k: int, seconds: float, flops: dict,
                    compiled: bool) -> dict:
        s = self.s
        warmup = s["warmup"]
        lo, hi = s["steps"]
        workers = self.workers(clips, True)
        loader = self.make_loader(clips, warmup + hi + 10, True, workers, seed=clips)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
        t = time.perf_counter()
        it = iter(loader)
        batch = next(it)[1]
        first_batch_s = time.perf_counter() - t
        # Warm-up (synchronised steps): at least `warmup` steps, and with compile until a step
        # is within 1.5x of the fastest so far (recompilations end), at most 6 more.
        warm = []
        while True:
            t = time.perf_counter()
            self.train_step(model, optim, batch if not warm else next(it)[1])
            self.sync()
            warm.append(time.perf_counter() - t)
            if len(warm) >= warmup + (6 if compiled else 0):
                break
            if len(warm) >= warmup and (not compiled or (
                    len(warm) >= 2 and warm[-1] <= 1.5 * min(warm[:-1]))):
                break
        first_step_s = warm[0]
        warm_s = min(warm)
        steps = int(max(lo, min(hi, (seconds - sum(warm) - 3) / max(warm_s, 1e-3) * 0.7)))
        waits, losses, marks = [], [], []
        t_wall = time.perf_counter()
        for _ in range(steps):
            t = time.perf_counter()
            batch = next(it)[1]
            waits.append(time.perf_counter() - t)
            if self.cuda:
                start, end = (torch.cuda.Event(enable_timing=True),
                              torch.cuda.Event(enable_timing=True))
                start.record()
                losses.append(self.train_step(model, optim, batch))
                end.record()
                marks.append((start, end))
            else:
                t = time.perf_counter()
                losses.append(self.train_step(model, optim, batch))
                marks.append(time.perf_counter() - t)
        self.sync()
        wall = time.perf_counter() - t_wall
        del it, loader
        times = ([a.elapsed_time(b) / 1000 for a, b in marks] if self.cuda else marks)
        step_s = statistics.median(times)
        crops = clips * k
        step_flops = flops["flops_fixed"] + flops["flops_per_clip"] * clips
        row = {"steps": steps, "warmup_steps": len(warm), "warmup_step_s": warm,
               "workers": workers, "step_s": step_s,
               "step_s_min": min(times), "step_s_max": max(times),
               "crops_per_s": crops / step_s, "crops_per_s_wall": crops * steps / wall,
               "clips_per_s_wall": clips * steps / wall,
               "tflop_per_step": step_flops / 1e12,
               "achieved_tflops": step_flops / step_s / 1e12,
               "mfu": step_flops / step_s / self.ceiling_flops if self.ceiling_flops else None,
               "data_wait_s": statistics.mean(waits), "data_wait_s_max": max(waits),
               "first_batch_s": first_batch_s, "first_step_s": first_step_s,
               "loss_first": float(losses[0]), "loss_last": float(losses[-1]),
               "timing": "CUDA events around each step (H2D copy, device mixing, forward,"
                         " backward, clip, AdamW); median" if self.cuda
               else "perf_counter per step; median"}
        if compiled:
            row["compile_s"] = max(0.0, sum(warm) - len(warm) * step_s)
        if self.cuda:
            row["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
        return row

    # ------------------------------------------------------------------ f. trainer
    def trainer(self, allowance: float) -> dict:
        s, deadline = self.sizes_and_deadline(allowance)
        root = self.work / "trainer"
        iters = s["trainer_iters"]
        if self.cuda and allowance < 150:  # keep to the budget with fewer iterations
            iters = max(20, int(iters * max(0.2, (allowance - 50) / 100)))
        config, cfg = self.trainer_config(root, iters)
        exp = root / "exp"
        if exp.exists():
            import shutil
            shutil.rmtree(exp)
        train, valid = root / "data" / "train" / "wav.scp", root / "data" / "valid" / "wav.scp"
        cmd = [sys.executable, "-m", "espnet2_gram.bin.gram_train", "--config", str(config),
               "--train_data_path_and_name_and_type", f"{train},speech,sound",
               "--valid_data_path_and_name_and_type", f"{valid},speech,sound",
               "--train_shape_file", str(train), "--valid_shape_file", str(valid),
               "--output_dir", str(exp), "--resume", "true"]
        cmd += ["--ngpu", "1", "--use_amp", "true"] if self.cuda else ["--ngpu", "0"]
        out = {"config": "logs/trainer/train.yaml", "batch_clips": s["trainer_batch"],
               "crops_per_clip": s["crops_per_clip"], "iters_per_epoch": iters,
               "mix_on_device": self.cuda, "workers": cfg["num_workers"],
               "command": " ".join([os.path.basename(cmd[0])] + cmd[1:3] + ["..."])}
        # Two epochs, then one more after --resume.
        t = time.perf_counter()
        first = self.run_logged(cmd + ["--max_epoch", "2"], root / "train.log",
                                (deadline - self.elapsed()) * 0.65)
        out["run1_wall_s"] = time.perf_counter() - t
        epochs = parse_epochs(first.stdout)
        if sorted(epochs) != [1, 2]:
            raise RuntimeError(f"expected epochs 1 and 2 in {root / 'train.log'}, found"
                               f" {sorted(epochs)}")
        out["epochs"] = epochs
        out["loss_first_epoch"] = epochs[1]["train"].get("loss")
        out["loss_last_epoch"] = epochs[2]["train"].get("loss")
        out["loss_decreased"] = (out["loss_first_epoch"] is not None
                                 and out["loss_last_epoch"] is not None
                                 and out["loss_last_epoch"] < out["loss_first_epoch"])
        out["iters_per_s_run1"] = 2 * iters / out["run1_wall_s"]
        if epochs[2].get("seconds"):
            out["iters_per_s_epoch2"] = iters / epochs[2]["seconds"]
        self.log(f"trainer: losses {out['loss_first_epoch']} -> {out['loss_last_epoch']} in"
                 f" {out['run1_wall_s']:.1f} s")
        self.resumed_run(cmd, root, deadline, out)
        problems = []
        if not out["loss_decreased"]:
            problems.append(f"the last epoch's loss {out['loss_last_epoch']} is not below the"
                            f" first's {out['loss_first_epoch']}")
        if not out["resume"]["continued_from_saved_epoch"]:
            problems.append(f"the resumed run did not continue from epoch 2: {out['resume']}")
        if problems:
            out["problems"] = problems
            raise SectionError("; ".join(problems), out)
        return out

    def trainer_config(self, root: Path, iters: int) -> tuple:
        """The data dirs and the training YAML of the trainer section: ``(path, mapping)``."""
        import yaml

        s = self.s
        for split, scp in (("train", self.data["train_scp"]), ("valid", self.data["valid_scp"])):
            d = root / "data" / split
            d.mkdir(parents=True, exist_ok=True)
            (d / "wav.scp").write_text(Path(scp).read_text())
        cfg = yaml.safe_load(Path(self.config).read_text())
        lr = cfg.get("optim_conf", {}).get("lr", 2e-4)
        total = iters * 3
        cfg.update(
            batch_size=s["trainer_batch"], num_iters_per_epoch=iters, max_epoch=2,
            num_workers=self.workers(s["trainer_batch"], self.cuda), use_matplotlib=False,
            use_tensorboard=False,
            keep_nbest_models=1, num_att_plot=0,
            scheduler="cosineannealingwarmuprestarts",
            scheduler_conf={"first_cycle_steps": total, "warmup_steps": max(1, iters // 10),
                            "max_lr": lr, "min_lr": lr / 10},
        )
        cfg["model_conf"] = {**cfg.get("model_conf", {}), "crops_per_clip": s["crops_per_clip"]}
        cfg["scene_conf"] = {**cfg.get("scene_conf", {}), "bank_dir": self.data["bank_dir"],
                             "noise_scp": self.data["noise_scp"], "mix_on_device": self.cuda}
        if self.cuda:
            cfg["use_amp"] = True
        config = root / "train.yaml"
        config.write_text(yaml.safe_dump(cfg, sort_keys=False))
        return config, cfg

    def resumed_run(self, cmd: list, root: Path, deadline: float, out: dict) -> None:
        """One more epoch after ``--resume``: whether it continued from the saved epoch."""
        t = time.perf_counter()
        second = self.run_logged(cmd + ["--max_epoch", "3"], root / "resume.log",
                                 deadline - self.elapsed())
        out["run2_wall_s"] = time.perf_counter() - t
        text = second.stdout
        started = [int(m.group(1)) for m in re.finditer(r"(\d+)/\d+epoch started", text)]
        again = parse_epochs(text)
        out["resume"] = {
            "resumed_line": "The training was resumed" in text,
            "first_epoch_started": started[0] if started else None,
            "epochs_trained": sorted(again),
            "finished": 3 in again,
            "loss": again.get(3, {}).get("train", {}).get("loss"),
        }
        out["resume"]["continued_from_saved_epoch"] = (
            out["resume"]["resumed_line"] and out["resume"]["first_epoch_started"] == 3
            and sorted(again) == [3])
        out["epochs"].update(again)
        self.log(f"trainer: resume {out['resume']} in {out['run2_wall_s']:.1f} s")

    # ------------------------------------------------------------------ d. attention forms
    def attention(self, allowance: float) -> dict:
        from espnet2_gram.gram import attention as attn_module

        if not hasattr(attn_module, "set_window_attention"):
            raise Skip("espnet2_gram.gram.attention.set_window_attention not available")
        s = self.s
        k = s["crops_per_clip"]
        model = self.build_model(k)
        enc, dec = model.encoder, model.decoder
        n = s["attention_crops"]
        crops = torch.randn(n, enc.in_channels, enc.n_mels, enc.crop_frames, device=self.device)
        mask = model.masking(n, enc.grid, device=self.device)
        with torch.no_grad(), self.autocast():
            tokens = enc(crops, mask)
        rows, outputs = [], {}
        deadline = self.elapsed() + allowance
        for impl in ("windows", "dense", "auto"):
            if self.elapsed() > deadline - 2:
                rows.append({"impl": impl, "status": "skipped", "reason": "out of time"})
                continue
            try:
                attn_module.set_window_attention(dec, impl)
                if self.cuda:
                    torch.cuda.reset_peak_memory_stats(self.device)

                def step():
                    with self.autocast():
                        pred = dec(tokens, mask)
                    pred.float().square().mean().backward()
                    return pred

                with torch.no_grad(), self.autocast():
                    outputs[impl] = dec(tokens, mask).float()
                step()
                self.sync()
                times = []
                for _ in range(s["attention_reps"]):
                    if self.cuda:
                        a, b = (torch.cuda.Event(enable_timing=True),
                                torch.cuda.Event(enable_timing=True))
                        a.record()
                        step()
                        b.record()
                        times.append((a, b))
                    else:
                        t = time.perf_counter()
                        step()
                        times.append(time.perf_counter() - t)
                self.sync()
                times = [a.elapsed_time(b) / 1000 for a, b in times] if self.cuda else times
                row = {"impl": impl, "status": "ok", "fwd_bwd_ms": 1e3 * statistics.median(times),
                       "crops": n}
                if self.cuda:
                    row["peak_mem_gb"] = torch.cuda.max_memory_allocated(self.device) / 2**30
                rows.append(row)
            except Exception as e:
                rows.append({"impl": impl, "status": "error", "error": first_line(e)})
            dec.zero_grad(set_to_none=True)
        attn_module.set_window_attention(dec, "auto")
        by = {r["impl"]: r for r in rows}
        out = {"crops": n, "windows": list(getattr(dec, "windows", [])), "rows": rows,
               "timing": "decoder forward + backward on the same encoder tokens and mask"}
        if all(by.get(impl, {}).get("status") == "ok" for impl in ("windows", "dense")):
            out["dense_over_windows"] = by["dense"]["fwd_bwd_ms"] / by["windows"]["fwd_bwd_ms"]
            out["max_abs_diff"] = float((outputs["windows"] - outputs["dense"]).abs().max())
        bad = [r for r in rows if r["status"] == "error"]
        if bad:
            raise RuntimeError(f"{bad[0]['impl']}: {bad[0]['error']}")
        return out

    # ------------------------------------------------------------------ e. GRAM-T
    def gramt(self, allowance: float) -> dict:
        if not self.args.gramt_source:
            raise Skip("no --gramt_source given")
        from espnet2_gram.benchmarks.gramt import side_by_side

        s = self.s
        config = str(REPO / PAPER_CONFIG)  # GRAM-T is ViT-B: the paper sizes, also with --tiny
        result = side_by_side(self.args.gramt_source, config, s["gramt_crops"],
                              s["gramt_steps"], str(self.device), amp_dtype=self.amp_dtype)
        return {"config": PAPER_CONFIG, "crops": s["gramt_crops"], "steps": s["gramt_steps"],
                "result": result}


def shm_free_bytes():
    """Free bytes of /dev/shm (where DataLoader workers put their batches), or None."""
    try:
        import shutil
        return shutil.disk_usage("/dev/shm").free
    except OSError:
        return None


def max_rir_samples(bank: Path) -> int:
    metas = (json.loads(line) for line in (bank / "meta.jsonl").read_text().splitlines()
             if line.strip())
    return max(int(m["num_samples"]) for m in metas)


# ---------------------------------------------------------------------- synthetic data
def write_synthetic_bank(bank: Path, packs: int, fs: int, fmt: str, keep: Path = None) -> None:
    """A stand-in RIR bank (the bank's files and metadata fields) for when make_rir_bank
    cannot run: per RIR a direct path with interaural delays and gains and an exponential
    noise tail of RT60 0.2-0.6 s; 0-3 noise sources per pack. ``keep``: a folder inside
    ``bank`` left in place."""
    import shutil

    from espnet2_gram.simulation.rir_bank import CONFIG, noise_id, pack_id, write_shard

    for child in bank.iterdir() if bank.exists() else []:
        if keep is None or child != keep:
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    bank.mkdir(parents=True, exist_ok=True)
    shard_size = 2
    (bank / CONFIG).write_text(json.dumps({"num_packs": packs, "shard_size": shard_size,
                                           "synthetic": True}))
    channels = num_channels(fmt)
    length = int(0.4 * fs)
    rng = np.random.default_rng(1)
    t = np.arange(length) / fs

    def rir(rt60):
        out = rng.standard_normal((channels, length)) * np.exp(-6.9 * t / rt60) * 0.05
        out[:, :int(0.002 * fs)] = 0.0
        for c in range(channels):
            out[c, int(rng.uniform(0, 0.0007) * fs)] += rng.uniform(0.5, 1.0)
        return out.astype(np.float32)

    for shard in range(-(-packs // shard_size)):
        items = []
        for i in range(shard * shard_size, min(packs, (shard + 1) * shard_size)):
            rt60 = float(rng.uniform(0.2, 0.6))
            pid = pack_id("synth_", i)
            noise_ids = [noise_id(pid, k) for k in range(1, int(rng.integers(0, 4)) + 1)]
            arrays = {key: rir(rt60) for key in [pid] + noise_ids}
            meta = {"id": pid, "format": fmt, "fs": fs, "method": "synthetic",
                    "rt60_target": rt60, "rt60_measured": rt60, "azimuth": 0.0,
                    "elevation": 0.0, "distance": 1.0, "noise_ids": noise_ids,
                    "num_samples": length}
            items.append((arrays, meta))
        write_shard(bank, shard, items)


def write_wav(path: Path, x: np.ndarray, fs: int) -> None:
    import soundfile as sf

    peak = float(np.max(np.abs(x))) or 1.0
    sf.write(str(path), (x / peak * 0.5).astype(np.float32), fs, subtype="PCM_16")


def synthetic_clip(rng: np.random.Generator, n: int, fs: int) -> np.ndarray:
    """Events of sound a masked autoencoder can learn: harmonic tones with vibrato, chirps,
    filtered noise bursts, over a faint noise floor."""
    x = rng.standard_normal(n).astype(np.float32) * 0.003
    for _ in range(int(rng.integers(3, 9))):
        length = int(rng.uniform(0.2, 1.5) * fs)
        start = int(rng.integers(0, max(1, n - length)))
        length = min(length, n - start)
        t = np.arange(length) / fs
        kind = rng.integers(3)
        if kind == 0:
            f0 = rng.uniform(100, 800) * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 7) * t))
            phase = 2 * np.pi * np.cumsum(f0) / fs
            y = sum(np.sin(h * phase) / h for h in range(1, 6))
        elif kind == 1:
            f = np.geomspace(rng.uniform(200, 2000), rng.uniform(200, 6000), length)
            y = np.sin(2 * np.pi * np.cumsum(f) / fs)
        else:
            y = rng.standard_normal(length)
            for _ in range(int(rng.integers(1, 4))):  # crude low-pass by running means
                y = np.convolve(y, np.ones(4) / 4, mode="same")
        envelope = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.02)
        x[start:start + length] += (rng.uniform(0.2, 1.0) * envelope * y).astype(np.float32)
    return x


def write_source_set(directory: Path, prefix: str, clips: int, clip_s: float, extra_s: float,
                     fs: int, seed: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(clips):
        n = int((clip_s + rng.uniform(0, extra_s)) * fs)
        path = directory / f"{prefix}{i:04d}.wav"
        write_wav(path, synthetic_clip(rng, n, fs), fs)
        lines.append(f"{prefix}{i:04d} {path}\n")
    scp = directory / "wav.scp"
    scp.write_text("".join(lines))
    return scp


def write_noise_set(directory: Path, files: int, seconds: float, fs: int) -> Path:
    """Coloured noises (white to brown) with slow level changes, as a noise wav.scp."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    lines = []
    n = int(seconds * fs)
    for i in range(files):
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / fs)
        spec /= np.maximum(freqs, 20.0) ** (i % 3 / 2)  # 0: white, 1: pink, 2: brown
        x = np.fft.irfft(spec, n)
        x *= 1 + 0.5 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * np.arange(n) / fs)
        path = directory / f"noise{i:03d}.wav"
        write_wav(path, x, fs)
        lines.append(f"noise{i:03d} {path}\n")
    scp = directory / "wav.scp"
    scp.write_text("".join(lines))
    return scp


# ---------------------------------------------------------------------- trainer logs
TIMESTAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"


def _stamp(text: str):
    from datetime import datetime

    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S,%f")


def parse_epochs(text: str) -> dict:
    """``{epoch: {"train": {key: value}, "valid": {...}, "seconds": ...}}`` from the
    ``<N>epoch results: [train] k=v, ... [valid] k=v, ...`` lines of ESPnet's trainer log;
    ``seconds`` from the timestamps of ``<N>/<M>epoch started`` to its results line."""
    starts = {}
    for line in text.splitlines():
        m = re.search(r"(\d+)/\d+epoch started", line)
        ts = re.search(TIMESTAMP, line)
        if m and ts:
            starts[int(m.group(1))] = _stamp(ts.group(1))
    epochs = {}
    for line in text.splitlines():
        m = re.search(r"(\d+)epoch results: (.*)$", line)
        if not m:
            continue
        epoch = int(m.group(1))
        entry = {}
        for part in re.finditer(r"\[(\w+)\] (.*?)(?= \[\w+\] |$)", m.group(2)):
            entry[part.group(1)] = {k: float(v) for k, v in re.findall(
                r"(\w+)=([-+]?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))", part.group(2))}
        ts = re.search(TIMESTAMP, line)
        if ts and epoch in starts:
            entry["seconds"] = (_stamp(ts.group(1)) - starts[epoch]).total_seconds()
        entry.setdefault("train", {})
        epochs[epoch] = entry
    return epochs


# ---------------------------------------------------------------------- Markdown
def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 1:
            return f"{v:.2f}"
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v)
    return str(v).replace("|", "/").replace("\n", " ")


def _table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(results: dict) -> str:
    env, settings = results.get("environment", {}), results.get("settings", {})
    sections = results.get("sections", {})
    md = ["# GRAM GPU benchmark\n",
          f"{settings.get('size')} run on {env.get('cuda_device') or 'CPU'}"
          f" ({settings.get('device')}),"
          f" config `{settings.get('config')}`, budget {settings.get('budget_s')} s, elapsed"
          f" {results.get('elapsed_s')} s.\n",
          "## Environment\n",
          _table(["key", "value"], [(k, v) for k, v in env.items()])]

    def status(name):
        entry = sections.get(name)
        if entry is None:
            return None, "not run"
        if entry.get("status") == "skipped":
            return entry, f"skipped: {entry.get('reason')}"
        if entry.get("status") == "error":
            return entry, f"error: {entry.get('error')}"
        return entry, None

    titles = {"ceiling": "Ceiling (measured matrix rate)", "data": "Data and loader",
              "sweep": "Training step sweep", "trainer": "ESPnet trainer path",
              "attention": "Decoder attention forms", "gramt": "GRAM-T side by side"}
    for name in SECTIONS:
        md.append(f"## {titles[name]}\n")
        entry, note = status(name)
        if note:
            md.append(f"{note}\n")
        if entry is None or entry.get("status") == "skipped":
            continue
        try:
            md.append(RENDERERS[name](entry))
        except Exception as e:  # a partial entry (an error) may lack some fields
            md.append(f"(table unavailable: {first_line(e)})\n")
    return "\n".join(md)


def _md_ceiling(e):
    return _table(["dtype", "size", "repeats", "TFLOP/s (median)", "TFLOP/s (best)"],
                  [(e["dtype"], e["size"], e["repeats"], e["tflops_median"], e["tflops_best"])])


def _md_data(e):
    b, sets = e["bank"], e["sets"]
    out = _table(["item", "value"], [
        ("format / fs", f"{e['format']} / {e['fs']} Hz"),
        ("RIR bank", f"{b['packs']} packs, {b['rirs']} RIRs, method {b['method']}, {b['jobs']}"
                     f" jobs, {b['seconds']:.1f} s"),
        ("sources", f"{sets['train_clips']} train + {sets['valid_clips']} valid clips of"
                    f" {sets['clip_seconds']} s"),
        ("noise", f"{sets['noise_files']} files of {sets['noise_seconds']:g} s"),
    ] + ([("bank error", e["bank_error"])] if e.get("bank_error") else []))
    rows = [(r["mix_on_device"], r.get("workers"), r.get("batch_clips"), r.get("batches"),
             r.get("first_batch_s"), r.get("scenes_per_s"), r.get("device_mix_scenes_per_s"),
             r.get("status") if r.get("status") != "ok" else "")
            for r in e.get("loader", [])]
    out += "\n" + _table(["mix_on_device", "workers", "batch", "batches", "first batch s",
                          "loader scenes/s", "device mixing scenes/s", "note"], rows)
    return out


def _md_sweep(e):
    f = e.get("flops", {})
    head = (f"Config `{e.get('config')}`, {e.get('params_m', 0):.1f} M parameters,"
            f" {e.get('crops_per_clip')} crops per clip, amp {e.get('amp')}, {e.get('optimizer')},"
            f" {e.get('workers')} loader workers, mix_on_device. FLOPs:"
            f" {f.get('flops_per_crop', 0) / 1e9:.2f} GFLOP per crop ({f.get('method')}).\n\n")
    rows = []
    for p in e.get("points", []):
        if p.get("status") != "ok":
            rows.append((p["compile"], p["clips"], p["crops"]) + ("-",) * 8
                        + (f"{p.get('status')}: {p.get('reason') or p.get('error')}",))
            continue
        rows.append((p["compile"], p["clips"], p["crops"], 1e3 * p["step_s"], p["crops_per_s"],
                     p["crops_per_s_wall"],
                     100 * p["mfu"] if p.get("mfu") is not None else None,
                     p.get("peak_mem_gb"), 1e3 * p["data_wait_s"], p.get("compile_s"),
                     p["steps"], ""))
    out = head + _table(["compiled", "clips", "crops", "step ms (median)", "crops/s",
                         "crops/s (wall)", "MFU %", "peak GB", "loader wait ms/step",
                         "compile s", "steps", "note"], rows)
    sdpa = e.get("sdpa", {})
    if sdpa:
        out += "\nSDPA kernels (forced: the encoder with one backend allowed):\n\n" + _table(
            ["backend", "result"],
            [(f"forced {k}", v) for k, v in sdpa.get("forced", {}).items()]
            + [("encoder, default dispatch", sdpa.get("encoder_used") or sdpa.get("error")),
               ("decoder, default dispatch", sdpa.get("decoder_used", "-"))])
    return out


def _md_trainer(e):
    rows = []
    for epoch, entry in sorted(e.get("epochs", {}).items(), key=lambda kv: int(kv[0])):
        tr, va = entry.get("train", {}), entry.get("valid", {})
        rows.append((epoch, tr.get("loss"), va.get("loss"), tr.get("train_time"),
                     entry.get("seconds"), "resumed run" if int(epoch) == 3 else ""))
    out = _table(["epoch", "train loss", "valid loss", "train_time s/iter", "epoch s", "note"],
                 rows)
    r = e.get("resume", {})
    out += "\n" + _table(["item", "value"], [
        ("batch", f"{e.get('batch_clips')} clips x {e.get('crops_per_clip')} crops,"
                  f" {e.get('iters_per_epoch')} iterations per epoch"),
        ("mix_on_device", e.get("mix_on_device")),
        ("last epoch loss < first", e.get("loss_decreased")),
        ("run 1 wall s (2 epochs, with start-up)", e.get("run1_wall_s")),
        ("iterations/s (run 1, with start-up)", e.get("iters_per_s_run1")),
        ("iterations/s (epoch 2, with validation)", e.get("iters_per_s_epoch2")),
        ("resume: continued from the saved epoch", r.get("continued_from_saved_epoch")),
        ("resume: first epoch started", r.get("first_epoch_started")),
        ("run 2 wall s", e.get("run2_wall_s")),
    ])
    return out


def _md_attention(e):
    rows = [(r["impl"], r.get("fwd_bwd_ms"), r.get("peak_mem_gb"),
             r.get("status") if r.get("status") != "ok" else "") for r in e.get("rows", [])]
    out = (f"{e.get('crops')} crops, windows {e.get('windows')}; {e.get('timing')}.\n\n"
           + _table(["impl", "fwd+bwd ms", "peak GB", "note"], rows))
    if "dense_over_windows" in e:
        out += (f"\ndense / windows time: {e['dense_over_windows']:.2f}; max |windows - dense|"
                f" of the outputs: {e['max_abs_diff']:.3g}\n")
    return out


def _flatten(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _md_gramt(e):
    result = e.get("result")
    if not isinstance(result, dict):
        return f"{result}\n"
    rows = [(k, v if len(_fmt(v)) <= 200 else _fmt(v)[:200] + "...")
            for k, v in _flatten(result)]
    return (f"Config `{e.get('config')}`, {e.get('crops')} crops, {e.get('steps')} steps.\n\n"
            + _table(["key", "value"], rows))


RENDERERS = {"ceiling": _md_ceiling, "data": _md_data, "sweep": _md_sweep,
             "trainer": _md_trainer, "attention": _md_attention, "gramt": _md_gramt}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out_dir", required=True)
    p.add_argument("--tiny", action="store_true",
                   help="demo config and tiny sizes (the CPU test of this script)")
    p.add_argument("--device", choices=["cuda", "cpu"],
                   default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--budget_s", type=float, default=420.0,
                   help="seconds for the whole run; sections that would not fit are skipped")
    p.add_argument("--work_dir", help="where the audio, the RIR bank and the trainer's"
                                      " checkpoints go (default OUT_DIR/work)")
    p.add_argument("--keep_work", action="store_true",
                   help="keep the work folder (removed at the end by default; logs are copied"
                        " to OUT_DIR/logs)")
    p.add_argument("--gramt_source", help="the GRAM-T source tree for the side-by-side section")
    p.add_argument("--compile", choices=["auto", "true", "false"], default="auto",
                   help="compiled sweep points (auto: on cuda only)")
    p.add_argument("--config", help=f"pretraining YAML (default {PAPER_CONFIG}, --tiny:"
                                    f" {DEMO_CONFIG})")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available to this torch"
                         f" ({torch.__version__}); use --device cpu")
    bench = Benchmark(args)
    bench.log(f"GRAM GPU benchmark: {bench.size} on {bench.device}, budget {args.budget_s:.0f} s,"
              f" out {bench.out}")
    bench.results["environment"] = bench.env()
    bench.log(f"environment: {json.dumps(bench.results['environment'])}")
    bench.write()
    bench.section("ceiling", bench.ceiling)
    bench.section("data", bench.data_section)
    bench.section("sweep", bench.sweep)
    bench.section("trainer", bench.trainer)
    bench.section("attention", bench.attention)
    bench.section("gramt", bench.gramt)
    try:
        bench.finish()
    except OSError as e:
        bench.log(f"could not tidy up: {first_line(e)}")
    bench.write()
    summary = {k: v["status"] for k, v in bench.results["sections"].items()}
    bench.log(f"done in {bench.elapsed():.1f} s: {summary}; {bench.out / 'gpu_benchmark.md'}")


if __name__ == "__main__":
    run(main)
