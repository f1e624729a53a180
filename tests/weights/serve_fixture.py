"""Serve the fabricated release on 127.0.0.1 for trying `regionspot download` by hand (never the internet).

    python -m tests.weights.serve_fixture               # serve until Ctrl-C; prints the base URL and what to run
    python -m tests.weights.serve_fixture --transcript  # run the commands against it and print what they print

The SAM file drops its connection half way the first time (the download resumes), BL's head link answers a
web page (as a cloud drive does), and a folder "saved from a browser" holds that head for `--from`.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from regionspot.testing.release_server import make_release, release_catalog, release_server

ROOT = Path(__file__).resolve().parents[2]


def _commands(work: Path) -> list[str]:
    return ["regionspot models", "regionspot download BB", "regionspot download BL",
            f"regionspot download BL --from {work / 'browser'}", "regionspot models",
            "regionspot predict --model BB --vocab circle,square,star --boxes 2,3,40,30 "
            f"--out {work / 'result.json'} --viz {work / 'result.png'} --device cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcript", action="store_true", help="run the example commands and print their output")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a new temporary one)")
    args = parser.parse_args()
    work = args.dir or Path(tempfile.mkdtemp(prefix="regionspot-release-"))
    release = make_release(work / "release")
    (work / "browser").mkdir(parents=True, exist_ok=True)
    shutil.copy(release["head"], work / "browser" / "RegionSpot-BL.pth")
    with release_server(release) as server:
        server.drop_once.add("/dl/segment_anything/sam_vit_b_01ec64.pth")
        sources = work / "sources.json"
        sources.write_text(json.dumps(release_catalog(server.url, release).to_dict(), indent=1))
        env = {"REGIONSPOT_SOURCES": str(sources), "REGIONSPOT_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
        print(f"fabricated release served at {server.url}", flush=True)
        print("export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()), flush=True)
        if not args.transcript:
            print("then run:\n  " + "\n  ".join(_commands(work)) + "\n(Ctrl-C stops the server)", flush=True)
            try:
                while True:
                    input()
            except (KeyboardInterrupt, EOFError):
                return
        runner = [sys.executable, "-m", "regionspot.cli"]
        full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        for command in _commands(work):
            print(f"\n$ {command}", flush=True)
            argv = runner + shlex.split(command)[1:] + (["--no-progress"] if " download " in f" {command} " else [])
            done = subprocess.run(argv, env=full_env, capture_output=True, text=True)
            output = (done.stdout + done.stderr).rstrip()
            print(output + f"\n[exit {done.returncode}]", flush=True)


if __name__ == "__main__":
    main()
