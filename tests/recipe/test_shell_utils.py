"""Tests of the shell utilities in egs2/gram/utils/ and of path.sh / cmd.sh.

Every test runs the scripts with bash in a subprocess on data created under
tmp_path; no Slurm, no network, no virtual environment is created.
"""

import os
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UTILS = REPO / "egs2" / "gram" / "utils"

SCRIPTS = [
    "parse_options.sh",
    "run_local.sh",
    "run_slurm.sh",
    "split_scp.sh",
    "filter_scp.sh",
    "fix_data_dir.sh",
    "validate_data_dir.sh",
    "ensure_env.sh",
    "refresh_lock.sh",
]


def run(args, cwd=None, env=None, input=None, timeout=60):
    """Run a command list under bash; return the CompletedProcess."""
    full_env = dict(os.environ)
    full_env["LC_ALL"] = "C"
    if env:
        full_env.update(env)
    return subprocess.run(
        args,
        cwd=cwd,
        env=full_env,
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def util(name, *args, **kw):
    return run(["bash", str(UTILS / name), *map(str, args)], **kw)


def write(path, text, mode=None):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)
    return path


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_are_executable_bash(name):
    path = UTILS / name
    assert path.is_file()
    assert path.stat().st_mode & stat.S_IXUSR
    assert path.read_text().startswith("#!/usr/bin/env bash\n")
    assert run(["bash", "-n", str(path)]).returncode == 0


# --------------------------------------------------------------------------
# parse_options.sh


DEMO = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    set -euo pipefail
    stage=1
    foo_bar=default
    flag=false
    empty=
    help_message="Usage: demo.sh [options] <in> <out>"
    . "{utils}/parse_options.sh"
    echo "stage=$stage"
    echo "foo_bar=$foo_bar"
    echo "flag=$flag"
    echo "empty=$empty"
    echo "nargs=$#"
    for a in "$@"; do echo "arg=[$a]"; done
    echo "shellopts=$-"
    set | grep -c '^__po_' || true
    """
)


@pytest.fixture
def demo(tmp_path):
    path = write(tmp_path / "demo.sh", DEMO.format(utils=UTILS))

    def call(*args, **kw):
        return run(["bash", str(path), *args], cwd=tmp_path, **kw)

    return call


def parse_out(stdout):
    values, args = {}, []
    for line in stdout.splitlines():
        if line.startswith("arg=["):
            args.append(line[5:-1])
        elif "=" in line:
            k, v = line.split("=", 1)
            values[k] = v
    return values, args


def test_parse_options_known_options_both_spellings(demo):
    p = demo("--stage", "3", "--foo-bar", "x y", "--flag", "true", "--empty=a=b")
    assert p.returncode == 0, p.stderr
    values, args = parse_out(p.stdout)
    assert values["stage"] == "3"
    assert values["foo_bar"] == "x y"
    assert values["flag"] == "true"
    assert values["empty"] == "a=b"
    assert values["nargs"] == "0"
    p = demo("--foo_bar", "under")
    assert parse_out(p.stdout)[0]["foo_bar"] == "under"


def test_parse_options_keeps_positional_args_and_shell_options(demo):
    p = demo("--stage", "2", "pos1", "pos 2", "--stage", "9")
    assert p.returncode == 0, p.stderr
    values, args = parse_out(p.stdout)
    assert values["stage"] == "2"
    assert args == ["pos1", "pos 2", "--stage", "9"]
    # set -euo pipefail of the caller is untouched, no helper variable leaks
    assert "e" in values["shellopts"] and "u" in values["shellopts"]
    assert p.stdout.splitlines()[-1] == "0"
    p = demo("--", "--stage", "4")
    values, args = parse_out(p.stdout)
    assert values["stage"] == "1" and args == ["--stage", "4"]


def test_parse_options_does_not_set_errexit_in_caller(tmp_path):
    script = write(
        tmp_path / "lax.sh",
        f'x=1\n. "{UTILS}/parse_options.sh"\necho "x=$x opts=$-"\nfalse\necho survived\n',
    )
    p = run(["bash", str(script), "--x", "2"])
    assert p.returncode == 0, p.stderr
    assert "x=2" in p.stdout and "survived" in p.stdout
    assert "e" not in p.stdout.split("opts=")[1].split()[0]


def test_parse_options_unknown_option(demo):
    p = demo("--stage", "2", "--no_such", "1")
    assert p.returncode == 1
    assert "ERROR: unknown option --no_such" in p.stderr
    assert "demo.sh" in p.stderr
    assert "stage=" not in p.stdout
    p = demo("--no-such-either", "1")
    assert p.returncode == 1 and "unknown option --no-such-either" in p.stderr


def test_parse_options_missing_value(demo):
    p = demo("--foo_bar", "x", "--stage")
    assert p.returncode == 1
    assert "--stage" in p.stderr and "requires a value" in p.stderr


def test_parse_options_boolean_checked(demo):
    p = demo("--flag", "maybe")
    assert p.returncode == 1
    assert "--flag" in p.stderr and "true or false" in p.stderr


def test_parse_options_help(demo):
    for opt in ("--help", "-h"):
        p = demo("--stage", "2", opt)
        assert p.returncode == 0
        assert "Usage: demo.sh [options] <in> <out>" in p.stdout
        assert "stage=" not in p.stdout


def test_parse_options_config_file(demo, tmp_path):
    write(tmp_path / "my.conf", "# a comment\nstage=5\nfoo_bar=from_config\n")
    p = demo("--foo_bar", "from_cli", "--config", "my.conf", "rest")
    assert p.returncode == 0, p.stderr
    values, args = parse_out(p.stdout)
    assert values["stage"] == "5"  # from the config
    assert values["foo_bar"] == "from_cli"  # the command line wins
    assert args == ["rest"]
    p = demo("--config", "missing.conf")
    assert p.returncode == 1 and "missing.conf" in p.stderr


# --------------------------------------------------------------------------
# run_local.sh


def test_run_local_job_substitution_header_footer_and_quoting(tmp_path):
    p = util(
        "run_local.sh",
        "JOB=1:3",
        "exp/a/log/x.JOB.log",
        "printf",
        "[%s]\\n",
        "job JOB",
        "it's",
        "<unk>",
        "$HOME",
        "",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    for i in (1, 2, 3):
        lines = (tmp_path / f"exp/a/log/x.{i}.log").read_text().splitlines()
        assert lines[0].startswith("# printf ")
        assert f"job {i}" in lines[0]
        assert lines[1].startswith("# Started at ")
        assert lines[2:7] == [f"[job {i}]", "[it's]", "[<unk>]", "[$HOME]", "[]"]
        assert lines[-2].startswith("# Accounting: time=")
        assert lines[-2].endswith(" threads=1")
        assert lines[-1].startswith("# Ended (code 0) at ")
    assert not (tmp_path / "exp/a/log/x.JOB.log").exists()


def test_run_local_single_argument_is_a_bash_script(tmp_path):
    p = util(
        "run_local.sh",
        "JOB=2:3",
        "log/p.JOB.log",
        "echo 'hello JOB' | tr a-z A-Z; echo err-JOB >&2",
        cwd=tmp_path,
    )
    assert p.returncode == 0, p.stderr
    text = (tmp_path / "log/p.3.log").read_text()
    assert "HELLO 3\n" in text and "err-3\n" in text  # stdout and stderr
    assert not (tmp_path / "log/p.1.log").exists()
    # operators given as separate arguments stay operators
    p = util("run_local.sh", "log/q.log", "echo", "a b", "|", "tr", "a-z", "A-Z", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "A B\n" in (tmp_path / "log/q.log").read_text()


def test_run_local_runs_jobs_in_parallel(tmp_path):
    # Each job waits until all three have started: only passes if concurrent.
    barrier = (
        "touch started.JOB; for i in $(seq 200); do "
        "[ -e started.1 ] && [ -e started.2 ] && [ -e started.3 ] && exit 0; "
        "sleep 0.05; done; exit 1"
    )
    t0 = time.time()
    p = util("run_local.sh", "JOB=1:3", "log/b.JOB.log", barrier, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert time.time() - t0 < 8


def test_run_local_max_jobs_run(tmp_path):
    cmd = "echo start JOB >> order; sleep 0.2; echo end JOB >> order"
    p = util("run_local.sh", "--max_jobs_run", "1", "JOB=1:3", "log/m.JOB.log", cmd, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = (tmp_path / "order").read_text().split("\n")[:-1]
    # strictly one job at a time
    for k in range(0, 6, 2):
        assert lines[k].startswith("start") and lines[k + 1] == "end" + lines[k][5:]


def test_run_local_failure(tmp_path):
    p = util("run_local.sh", "JOB=1:3", "log/f.JOB.log", "echo job JOB; [ JOB -ne 2 ]", cwd=tmp_path)
    assert p.returncode == 1
    assert "run_local.sh: 1 / 3 failed, log is in log/f.2.log" in p.stderr
    assert (tmp_path / "log/f.2.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")
    for i in (1, 3):
        assert "# Ended (code 0)" in (tmp_path / f"log/f.{i}.log").read_text()
    p = util("run_local.sh", "JOB=1:3", "log/g.JOB.log", "exit 3", cwd=tmp_path)
    assert p.returncode == 1 and "3 / 3 failed, log is in log/g.1.log" in p.stderr
    assert "# Ended (code 3)" in (tmp_path / "log/g.1.log").read_text()


def test_run_local_without_job_range(tmp_path):
    p = util("run_local.sh", "a/b/c/one.log", "echo", "only", "JOB", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "only JOB\n" in (tmp_path / "a/b/c/one.log").read_text()
    p = util("run_local.sh", "one.log", "false", cwd=tmp_path)
    assert p.returncode == 1 and "1 / 1 failed, log is in one.log" in p.stderr


def test_run_local_usage_errors(tmp_path):
    p = util("run_local.sh", cwd=tmp_path)
    assert p.returncode == 1 and "Usage: run_local.sh" in p.stderr
    p = util("run_local.sh", "--bogus", "1", "x.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "unknown option --bogus" in p.stderr
    p = util("run_local.sh", "JOB=1:2", "same.log", "true", cwd=tmp_path)
    assert p.returncode == 1 and "does not contain" in p.stderr
    # options of the slurm backend are accepted and ignored
    p = util("run_local.sh", "--gpu", "1", "--mem", "2G", "--num_threads", "2", "x.log", "true", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert "threads=2" in (tmp_path / "x.log").read_text()


# --------------------------------------------------------------------------
# run_slurm.sh with a fake sbatch

FAKE_SBATCH = textwrap.dedent(
    """\
    #!/usr/bin/env bash
    # Fake sbatch: records its arguments, runs the job script locally.
    printf '%s\\n' "$@" > "$FAKE_SBATCH_ARGS"
    array=; script=
    for a in "$@"; do
      case "$a" in --array=*) array=${a#--array=} ;; esac
      script=$a
    done
    echo "Submitted batch job 4242"
    max=0
    if [ -n "$array" ]; then
      range=${array%%%*}
      for ((i = ${range%-*}; i <= ${range#*-}; i++)); do
        [ "$i" != "${FAKE_SBATCH_SKIP:-}" ] || { max=1; continue; }  # "killed"
        rc=0
        SLURM_JOB_ID=4242 SLURM_ARRAY_TASK_ID=$i bash "$script" || rc=$?
        [ "$rc" -le "$max" ] || max=$rc
      done
    else
      SLURM_JOB_ID=4242 bash "$script" || max=$?
    fi
    exit "$max"
    """
)


@pytest.fixture
def slurm_env(tmp_path):
    write(tmp_path / "bin" / "sbatch", FAKE_SBATCH, mode=0o755)
    args_file = tmp_path / "sbatch.args"
    env = {
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SBATCH_ARGS": str(args_file),
        "RUN_SLURM_SYNC_WAIT": "0",
    }
    return env, args_file


def test_run_slurm_array_job_options_and_logs(tmp_path, slurm_env):
    env, args_file = slurm_env
    write(
        tmp_path / "slurm.conf",
        "# test config\n--partition gpu   # trailing comment\n--account=proj\n"
        "option mem=* --mem-per-cpu=$0\n",
    )
    p = util(
        "run_slurm.sh",
        "--config",
        "slurm.conf",
        "--gpu",
        "2",
        "--mem",
        "4G",
        "--num-threads",
        "3",
        "--time",
        "1:00:00",
        "--max_jobs_run",
        "2",
        "JOB=1:3",
        "exp/log/train.JOB.log",
        "printf",
        "[%s]\\n",
        "task JOB",
        "it's",
        cwd=tmp_path,
        env=env,
    )
    assert p.returncode == 0, p.stderr
    args = args_file.read_text().splitlines()
    for expected in (
        "--partition",
        "gpu",
        "--account=proj",
        "--gres=gpu:2",
        "--mem-per-cpu=4G",
        "--cpus-per-task=3",
        "--time=1:00:00",
        "--array=1-3%2",
        "--wait",
    ):
        assert expected in args
    assert args.index("--partition") + 1 == args.index("gpu")
    script = Path(args[-1])
    assert script.is_file() and script.read_text().startswith("#!/usr/bin/env bash")
    for i in (1, 2, 3):
        lines = (tmp_path / f"exp/log/train.{i}.log").read_text().splitlines()
        assert lines[0].startswith("# printf ") and f"task {i}" in lines[0]
        assert lines[1].startswith("# Started at ")
        assert f"[task {i}]" in lines and "[it's]" in lines
        assert lines[-2].startswith("# Accounting: time=") and lines[-2].endswith("threads=3")
        assert lines[-1].startswith("# Ended (code 0) at ")


def test_run_slurm_repo_config_and_failures(tmp_path, slurm_env):
    env, args_file = slurm_env
    conf = str(REPO / "conf" / "slurm.conf")
    # cuda_cmd style: GPU partition; train_cmd style: CPU partition
    p = util("run_slurm.sh", "--config", conf, "--gpu", "1", "JOB=1:2", "l/g.JOB.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    args = args_file.read_text().splitlines()
    assert "--gres=gpu:1" in args and "--partition=gpu" in args and "--array=1-2" in args
    p = util("run_slurm.sh", "--config", conf, "JOB=1:2", "l/c.JOB.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    args = args_file.read_text().splitlines()
    assert "--partition=cpu" in args and not any(a.startswith("--gres") for a in args)

    # one failing task: exit 1, message, per-task logs
    p = util("run_slurm.sh", "JOB=1:3", "l/f.JOB.log", "echo t JOB; exit $(( JOB == 3 ? 7 : 0 ))", cwd=tmp_path, env=env)
    assert p.returncode == 1
    assert "run_slurm.sh: 1 / 3 failed, log is in l/f.3.log" in p.stderr
    assert "# Ended (code 7)" in (tmp_path / "l/f.3.log").read_text()
    assert "t 1\n" in (tmp_path / "l/f.1.log").read_text()

    # a task that never ran (killed) counts as failed
    p = util("run_slurm.sh", "JOB=1:3", "l/k.JOB.log", "true", cwd=tmp_path, env={**env, "FAKE_SBATCH_SKIP": "2"})
    assert p.returncode == 1 and "1 / 3 failed, log is in l/k.2.log" in p.stderr

    # no job range: a plain (non-array) job
    p = util("run_slurm.sh", "l/one.log", "echo single", cwd=tmp_path, env=env)
    assert p.returncode == 0, p.stderr
    assert not any(a.startswith("--array") for a in args_file.read_text().splitlines())
    assert "single\n" in (tmp_path / "l/one.log").read_text()


def test_run_slurm_errors(tmp_path, slurm_env):
    env, _ = slurm_env
    p = util("run_slurm.sh", "--frobnicate", "1", "x.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "unknown option --frobnicate" in p.stderr
    write(tmp_path / "bad.conf", "partition gpu\n")
    p = util("run_slurm.sh", "--config", "bad.conf", "x.log", "true", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "bad.conf:1" in p.stderr
    write(tmp_path / "bin2" / "sbatch", "#!/usr/bin/env bash\necho 'sbatch: error: invalid partition' >&2\nexit 1\n", 0o755)
    p = util(
        "run_slurm.sh",
        "x.log",
        "true",
        cwd=tmp_path,
        env={**env, "PATH": f"{tmp_path / 'bin2'}{os.pathsep}{os.environ['PATH']}"},
    )
    assert p.returncode == 1 and "sbatch failed" in p.stderr and "invalid partition" in p.stderr


# --------------------------------------------------------------------------
# split_scp.sh / filter_scp.sh


def test_split_scp(tmp_path):
    lines = [f"utt{i:02d} /path/{i}.wav\n" for i in range(10)]
    write(tmp_path / "in.scp", "".join(lines))
    outs = [tmp_path / f"out.{k}.scp" for k in (1, 2, 3)]
    p = util("split_scp.sh", tmp_path / "in.scp", *outs)
    assert p.returncode == 0, p.stderr
    parts = [o.read_text().splitlines(keepends=True) for o in outs]
    assert [len(x) for x in parts] == [4, 3, 3]
    assert sum(parts, []) == lines  # contiguous, in order
    for n in (1, 7, 10):
        outs = [tmp_path / f"n{n}.{k}.scp" for k in range(n)]
        assert util("split_scp.sh", tmp_path / "in.scp", *outs).returncode == 0
        sizes = [len(o.read_text().splitlines()) for o in outs]
        assert max(sizes) - min(sizes) <= 1 and sum(sizes) == 10
        assert "".join(o.read_text() for o in outs) == "".join(lines)


def test_split_scp_errors(tmp_path):
    write(tmp_path / "in.scp", "a 1\nb 2\n")
    p = util("split_scp.sh", tmp_path / "in.scp", *(tmp_path / f"o{k}" for k in range(3)))
    assert p.returncode == 1 and "split_scp.sh" in p.stderr and "fewer" in p.stderr
    p = util("split_scp.sh", tmp_path / "in.scp")
    assert p.returncode == 1 and "Usage" in p.stderr


def test_filter_scp(tmp_path):
    write(tmp_path / "in.scp", "a 1\nb 2\nc 3\nd 4\n")
    write(tmp_path / "ids", "d x\nb\n\nzz\n")
    p = util("filter_scp.sh", tmp_path / "ids", tmp_path / "in.scp")
    assert p.returncode == 0 and p.stdout == "b 2\nd 4\n"
    p = util("filter_scp.sh", "--exclude", tmp_path / "ids", tmp_path / "in.scp")
    assert p.returncode == 0 and p.stdout == "a 1\nc 3\n"
    p = util("filter_scp.sh", tmp_path / "ids", input="b stdin\nq no\n")
    assert p.stdout == "b stdin\n"
    write(tmp_path / "empty", "")
    assert util("filter_scp.sh", tmp_path / "empty", tmp_path / "in.scp").stdout == ""
    p = util("filter_scp.sh")
    assert p.returncode == 1 and "Usage" in p.stderr


# --------------------------------------------------------------------------
# fix_data_dir.sh / validate_data_dir.sh


def make_good_dir(d):
    write(d / "wav.scp", "u1 /a/1.wav\nu2 /a/2.wav\nu3 /a/3.wav\n")
    write(d / "utt2spk", "u1 s1\nu2 s1\nu3 s2\n")
    write(d / "text", "u1 hello world\nu2 foo\nu3 bar\n")
    write(d / "spk2utt", "s1 u1 u2\ns2 u3\n")
    return d


def test_validate_data_dir_good(tmp_path):
    d = make_good_dir(tmp_path / "data")
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 0, p.stderr
    assert "OK" in p.stdout


def test_validate_data_dir_unsorted_and_duplicates(tmp_path):
    d = make_good_dir(tmp_path / "data")
    write(d / "text", "u2 foo\nu1 hello\nu3 bar\nu3 again\n")
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 1
    err = [l for l in p.stderr.splitlines() if "not sorted" in l]
    assert err and f"{d}/text" in err[0] and "u1" in err[0]
    dup = [l for l in p.stderr.splitlines() if "duplicate" in l]
    assert dup and "text" in dup[0] and "u3" in dup[0]


def test_validate_data_dir_mismatched_keys(tmp_path):
    d = make_good_dir(tmp_path / "data")
    write(d / "utt2spk", "u1 s1\nu2 s1\nu4 s2\n")
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 1
    line = [l for l in p.stderr.splitlines() if "different keys" in l][0]
    assert "wav.scp" in line and "utt2spk" in line and "u3" in line and "u4" in line
    assert any("spk2utt" in l for l in p.stderr.splitlines())


def test_validate_data_dir_missing_wav_scp(tmp_path):
    d = make_good_dir(tmp_path / "data")
    (d / "wav.scp").unlink()
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 1 and "wav.scp" in p.stderr
    write(d / "wav.scp", "")
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 1 and "empty" in p.stderr
    assert util("validate_data_dir.sh").returncode == 1


def test_fix_data_dir(tmp_path):
    d = tmp_path / "data"
    write(d / "wav.scp", "u3 /a/3.wav\nu1 /a/1.wav\nu2 /a/2.wav\nu4 /a/4.wav\n")
    write(d / "utt2spk", "u2 s1\nu1 s1\nu3 s2\n")  # no u4
    write(d / "text", "u1 hello  world\nu3 bar\nu2 foo\nu4 only here\nu9 orphan\n")
    write(d / "spk2utt", "s1 u1 u2\ns2 u3 u4\n")
    originals = {f.name: f.read_text() for f in d.iterdir()}
    p = util("fix_data_dir.sh", d)
    assert p.returncode == 0, p.stderr
    assert "kept 3" in p.stdout and "removed 2" in p.stdout
    assert (d / "wav.scp").read_text() == "u1 /a/1.wav\nu2 /a/2.wav\nu3 /a/3.wav\n"
    assert (d / "utt2spk").read_text() == "u1 s1\nu2 s1\nu3 s2\n"
    assert (d / "text").read_text() == "u1 hello  world\nu2 foo\nu3 bar\n"
    assert (d / "spk2utt").read_text() == "s1 u1 u2\ns2 u3\n"
    for name, text in originals.items():
        assert (d / ".backup" / name).read_text() == text
    p = util("validate_data_dir.sh", d)
    assert p.returncode == 0, p.stderr


def test_fix_data_dir_with_segments(tmp_path):
    d = tmp_path / "data"
    write(d / "wav.scp", "r2 /b.wav\nr1 /a.wav\nr3 /unused.wav\n")
    write(d / "segments", "s2 r2 0 1\ns1 r1 0.5 1.5\ns3 r9 0 1\n")  # r9 missing
    write(d / "utt2spk", "s1 x\ns2 x\ns3 x\n")
    p = util("fix_data_dir.sh", d)
    assert p.returncode == 0, p.stderr
    assert (d / "segments").read_text() == "s1 r1 0.5 1.5\ns2 r2 0 1\n"
    assert (d / "wav.scp").read_text() == "r1 /a.wav\nr2 /b.wav\n"
    assert util("validate_data_dir.sh", d).returncode == 0


def test_fix_data_dir_errors(tmp_path):
    assert util("fix_data_dir.sh").returncode == 1
    p = util("fix_data_dir.sh", tmp_path / "nope")
    assert p.returncode == 1 and "fix_data_dir.sh" in p.stderr
    d = tmp_path / "data"
    write(d / "wav.scp", "a x\n")
    write(d / "text", "b y\n")
    p = util("fix_data_dir.sh", d)
    assert p.returncode == 1 and "nothing changed" in p.stderr
    assert (d / "wav.scp").read_text() == "a x\n"


# --------------------------------------------------------------------------
# path.sh / cmd.sh


def test_cmd_sh_backends():
    show = '. ./cmd.sh && echo "$cmd_backend|$train_cmd|$cuda_cmd|$decode_cmd"'
    p = run(["bash", "-c", show], cwd=REPO, env={"GRAM_CMD_BACKEND": ""})
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "local|run_local.sh|run_local.sh|run_local.sh"
    p = run(["bash", "-c", show], cwd=REPO, env={"GRAM_CMD_BACKEND": "slurm"})
    assert p.stdout.strip() == (
        "slurm|run_slurm.sh --config conf/slurm.conf"
        "|run_slurm.sh --config conf/slurm.conf --gpu 1"
        "|run_slurm.sh --config conf/slurm.conf"
    )
    p = run(["bash", "-c", show], cwd=REPO, env={"GRAM_CMD_BACKEND": "pbs"})
    assert p.returncode != 0 and "GRAM_CMD_BACKEND" in p.stderr and "pbs" in p.stderr


def test_path_sh(tmp_path):
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "path.sh", root / "path.sh")
    write(root / ".venv" / "bin" / "activate", "export FAKE_VENV_ACTIVE=yes\n")
    write(
        root / "egs2" / "gram" / "utils" / "ensure_env.sh",
        "#!/usr/bin/env bash\necho ensure-called\n",
        mode=0o755,
    )
    show = (
        "set -euo pipefail; . ./path.sh; "
        'echo "$FAKE_VENV_ACTIVE $OMP_NUM_THREADS $PYTHONIOENCODING $PYTHONUNBUFFERED"; '
        'echo "${PATH%%:*}"'
    )
    p = run(["bash", "-c", show], cwd=root)
    assert p.returncode == 0, p.stderr
    out = p.stdout.splitlines()
    assert out == ["ensure-called", "yes 1 UTF-8 1", str(root / "egs2/gram/utils")]
    write(root / "egs2" / "gram" / "utils" / "check_env.py", "print('check-called')\n")
    p = run(["bash", "-c", show], cwd=root, env={"GRAM_SKIP_ENSURE_ENV": "1"})
    assert p.returncode == 0 and "ensure-called" not in p.stdout
    assert p.stdout.splitlines()[0] == "check-called"  # the active environment is checked
    write(root / "egs2" / "gram" / "utils" / "check_env.py", "raise SystemExit(1)\n")
    p = run(["bash", "-c", show], cwd=root, env={"GRAM_SKIP_ENSURE_ENV": "1"})
    assert p.returncode != 0
    write(root / "egs2" / "gram" / "utils" / "ensure_env.sh", "#!/usr/bin/env bash\nexit 3\n", mode=0o755)
    p = run(["bash", "-c", show], cwd=root)
    assert p.returncode != 0 and "ensure_env.sh failed" in p.stderr
