"""``regionspot serve`` as a user starts it: a subprocess on a free port, answering a gradio_client call."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serve_command_answers_the_api(example_image, tmp_path):
    from gradio_client import Client, handle_file

    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "regionspot.cli", "serve", "--port", str(port), "--grid", "4"],
                              stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the server did not start: {(tmp_path / 'serve.log').read_text()[-2000:]}")
                time.sleep(1)
        names = json.loads((example_image.parent / "example.json").read_text())["labels"]  # the example's own objects
        answer = Client(url, verbose=False).predict(handle_file(str(example_image)), ", ".join(names), "", "", True,
                                                    api_name="/label")
        assert answer["vocabulary"] == names and answer["regions"]
        assert all(region["label"] in names for region in answer["regions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert "regionspot demo on http://127.0.0.1:" in (tmp_path / "serve.log").read_text()
