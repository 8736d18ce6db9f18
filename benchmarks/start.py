"""How long ``scripts/serve.sh`` takes a newcomer: a new clone to the first answer of
``/readyz``, then the same clone again, and how each stops on Ctrl-C.

    python -m benchmarks.start [--keep-cache]

The clone is made from this checkout's HEAD into a temporary folder and gets its own
``FLASKANDMNIST_CACHE`` (so Cassandra is fetched from Maven Central the first time, as on a
fresh machine) and ``PIP_NO_CACHE_DIR=1`` (so pip downloads every package). ``--keep-cache``
uses the usual cache instead, which skips the Cassandra download. Ctrl-C is a SIGINT to
the script's process group, as a terminal sends it; the run then checks that no Cassandra
of the clone is left.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.load import _ready, free_port

ROOT = Path(__file__).resolve().parent.parent


def folder_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def cassandra_pids(cache: Path) -> list[int]:
    """Java processes that run the clone's Cassandra (its jars are under ``cache``)."""
    found = subprocess.run(["pgrep", "-f", f"java.*{cache}"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def start_once(clone: Path, env: dict[str, str], log: Path) -> tuple[float, float, list[int]]:
    """Seconds to /readyz 200, seconds from Ctrl-C to exit, Cassandra processes left."""
    probe = f"http://127.0.0.1:{env['PORT']}/readyz"
    started = time.monotonic()
    with log.open("w") as output:
        serve = subprocess.Popen(
            ["scripts/serve.sh"],
            cwd=clone,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        while not _ready(probe):
            if serve.poll() is not None:
                tail = log.read_text()[-3000:]
                raise SystemExit(f"serve.sh exited with {serve.returncode}:\n{tail}")
            time.sleep(0.2)
        ready = time.monotonic() - started
        stopping = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=120)
    return ready, time.monotonic() - stopping, cassandra_pids(Path(env["FLASKANDMNIST_CACHE"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-cache", action="store_true", help="use the usual cache")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="flaskandmnist-start-"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    env = dict(os.environ)
    env.update(PIP_NO_CACHE_DIR="1", PORT=str(free_port()), CASSANDRA_PORT=str(free_port()))
    if args.keep_cache:
        env.pop("FLASKANDMNIST_CACHE", None)
    else:
        env["FLASKANDMNIST_CACHE"] = str(work / "cache")
    env.setdefault("FLASKANDMNIST_CACHE", str(Path("~/.cache/flaskandmnist").expanduser()))
    print(f"clone of {ROOT} at {clone}, cache {env['FLASKANDMNIST_CACHE']}", flush=True)
    try:
        for run in ("first", "second"):
            ready, stop, left = start_once(clone, env, work / f"serve-{run}.log")
            print(
                f"{run} start: {ready:.1f} s to /readyz 200; Ctrl-C to exit {stop:.1f} s; "
                f"Cassandra processes left: {len(left)}",
                flush=True,
            )
        print(f".venv: {folder_mib(clone / '.venv'):.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
