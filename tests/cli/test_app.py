"""The command line as a program: `python -m regionspot.cli`."""

import subprocess
import sys


def test_version_and_help_run_as_a_program():
    done = subprocess.run([sys.executable, "-m", "regionspot.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.startswith("regionspot ")
