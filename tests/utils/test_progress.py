"""Progress bars: a live bar on a terminal, a bounded number of plain lines (no carriage return) elsewhere."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from regionspot.utils.progress import progress_bar, progress_mode, progress_write


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def no_setting(monkeypatch):
    monkeypatch.delenv("REGIONSPOT_PROGRESS", raising=False)
    monkeypatch.delenv("REGIONSPOT_PROGRESS_INTERVAL", raising=False)


def test_mode_follows_the_stream_and_the_setting(monkeypatch):
    assert progress_mode(io.StringIO()) == "lines" and progress_mode(Terminal()) == "bars"
    monkeypatch.setenv("REGIONSPOT_PROGRESS", "off")
    assert progress_mode(Terminal()) == "off"
    monkeypatch.setenv("REGIONSPOT_PROGRESS", "bars")
    assert progress_mode(io.StringIO()) == "bars"


def test_a_redirected_bar_writes_a_line_per_tenth_and_no_carriage_return():
    log = io.StringIO()
    bar = progress_bar(total=1000, desc="train", file=log)
    for i in range(1000):
        bar.update(1)
        bar.set_postfix(loss=f"{i / 1000:.3f}")  # refreshes on every step, as training does
    bar.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11, lines  # 0 %, 10 %, ..., 100 %
    assert lines[0].startswith("train:   0% 0/1000") and lines[-1].startswith("train: 100% 1000/1000")
    assert "loss=0.999" in lines[-1]


def test_lines_come_at_most_every_interval_in_between(monkeypatch):
    monkeypatch.setenv("REGIONSPOT_PROGRESS_INTERVAL", "0")
    log = io.StringIO()
    for _ in progress_bar(range(25), desc="slow", file=log, mininterval=0):
        pass
    assert len(log.getvalue().splitlines()) == 26  # interval 0: a line per update, plus the start


def test_unknown_total_iterables_and_messages_in_lines_mode():
    log = io.StringIO()
    bar = progress_bar(desc="read", unit=" entries", file=log)
    bar.update(30)
    progress_write("a message", file=log)
    bar.close()
    for _ in progress_bar(iter(range(5)), desc="generator", file=log, leave=False):
        pass
    text = log.getvalue()
    assert "\r" not in text and "a message\n" in text and "read: 30 entries" in text and "generator: 5it" in text


def test_off_and_disabled_write_nothing(monkeypatch):
    log = io.StringIO()
    for _ in progress_bar(range(10), desc="x", file=log, disable=True):
        pass
    monkeypatch.setenv("REGIONSPOT_PROGRESS", "off")
    for _ in progress_bar(range(10), desc="x", file=log):
        pass
    assert log.getvalue() == ""


def test_a_terminal_still_gets_a_live_bar():
    screen = Terminal()
    for _ in progress_bar(range(3), desc="bar", file=screen, mininterval=0):
        pass
    assert "\r" in screen.getvalue()


def test_shapesworld_generate_redirected_writes_lines(tmp_path):
    """A real command with its stderr in a file (not a terminal): plain lines, a bounded number."""
    done = subprocess.run([sys.executable, "-m", "regionspot.cli", "shapesworld", "generate", "--out", str(tmp_path / "sw"),
                           "--train", "30", "--val", "0", "--image-size", "64"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("ShapesWorld")]
    assert "\r" not in done.stderr and 2 <= len(lines) <= 12, done.stderr[-2000:]
