"""start_up / freeze_at_exit: no collection during start-up, what it made frozen, collection as before after it.

Run in a fresh interpreter, so that freezing does not touch the test process's objects.
"""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import gc
from regionspot.utils.startup_gc import freeze_at_exit, start_up

class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it

gc.collect()
with start_up():
    inside = gc.isenabled()
    kept = [Node() for _ in range(100)]
print("inside", inside, "after", gc.isenabled(), "frozen", gc.get_freeze_count() >= 100)

garbage = [Node() for _ in range(50)]
del garbage
print("collected", gc.collect() >= 50)  # garbage made after start-up is collected as usual

@start_up()
def load():
    return gc.isenabled()

print("decorated", load(), gc.isenabled())

gc.unfreeze()
gc.disable()
with start_up():
    pass
print("off stays off", gc.isenabled(), gc.get_freeze_count() == 0)

gc.enable()
with start_up():
    with start_up():
        pass
    nested = gc.isenabled()
print("nested", nested, gc.isenabled())

more = [Node() for _ in range(10)]
before = gc.get_freeze_count()
freeze_at_exit()
print("exit", gc.get_freeze_count() > before)
"""


def test_start_up_pauses_collection_and_freezes_what_it_made():
    lines = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines == [
        "inside False after True frozen True",
        "collected True",
        "decorated False True",
        "off stays off False True",
        "nested False True",
        "exit True",
    ]
