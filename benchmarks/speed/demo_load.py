"""Load check of the demo server (a script, not a test): N concurrent gradio_client clients for a bounded time.

Starts ``regionspot serve``'s app in this process on a free loopback port (the embedded model, offline)
unless ``--url`` names a running local server, then runs ``--clients`` threads, each with its own
``gradio_client.Client``, calling ``/label`` (the bundled example, one box) back to back until
``--seconds`` have passed or ``--max-requests`` each. Prints requests, errors, throughput and latency
percentiles. The server runs one request at a time (one model instance), so latency grows with the
number of clients while throughput stays that of one worker.

    python benchmarks/speed/demo_load.py --clients 4 --seconds 60 [--everything] [--url http://127.0.0.1:7860/]
"""

from __future__ import annotations

import argparse
import threading
import time
from urllib.parse import urlparse

import numpy as np

BOX = "62,98,114,155"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def start_local_server() -> tuple[str, object]:
    """The demo app (embedded model) on a free loopback port; returns (url, app)."""
    from regionspot.cli.predict import bundled_example
    from regionspot.demo.app import start_in_background
    from regionspot.demo.service import DemoService
    from regionspot.inference.predictor import RegionSpotPredictor
    from regionspot.model import RegionSpot

    return start_in_background(DemoService(RegionSpotPredictor(RegionSpot.from_pretrained())), bundled_example()[0])


def client_loop(url: str, image: str, deadline: float, max_requests: int, everything: bool,
                latencies: list[float], errors: list[str]) -> None:
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False)
    for _ in range(max_requests):
        if time.monotonic() >= deadline:
            return
        start = time.perf_counter()
        try:
            client.predict(handle_file(image), "", "" if everything else BOX, "", everything, api_name="/label")
            latencies.append(time.perf_counter() - start)
        except Exception as error:  # counted and reported, the load goes on
            errors.append(f"{type(error).__name__}: {error}"[:200])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=1000, help="Per client, an upper bound on the loop.")
    parser.add_argument("--everything", action="store_true", help="Ask for every region (proposals) instead of one box.")
    parser.add_argument("--url", default=None, help="A running local server (loopback only); default: start one.")
    args = parser.parse_args()

    from regionspot.cli.predict import bundled_example

    app = None
    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            raise SystemExit("This load check only targets a server on this machine (127.0.0.1 / localhost).")
        url = args.url
    else:
        url, app = start_local_server()
    image = str(bundled_example()[0])
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds
    started = time.perf_counter()
    threads = [threading.Thread(target=client_loop, args=(url, image, deadline, args.max_requests, args.everything,
                                                          latencies, errors)) for _ in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if app is not None:
        app.close()

    done = np.asarray(latencies)
    p50, p90, p99 = (np.percentile(done, q) if len(done) else float("nan") for q in (50, 90, 99))
    print(f"{args.clients} clients x {args.seconds:.0f} s against {url} ({'everything' if args.everything else 'one box'}, "
          "bundled example, embedded model)")
    print("| requests | errors | throughput (req/s) | p50 (s) | p90 (s) | p99 (s) | wall (s) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {len(done)} | {len(errors)} | {len(done) / elapsed:.2f} | {p50:.2f} | {p90:.2f} | {p99:.2f} | {elapsed:.1f} |")
    for message in sorted(set(errors))[:5]:
        print(f"error: {message}")


if __name__ == "__main__":
    main()
