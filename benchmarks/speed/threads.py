"""Two tladvisor processes on one machine: solo vs concurrent training throughput, per thread policy.

Each run is a child process training a small CNN (forward + backward + SGD step on random 64-px
images) for ``--seconds`` after a warm-up, and prints its images/s. Per policy:

- ``greedy``: what every process did before tladvisor.runtime.threads: torch's default, one thread per
  core, OpenMP's default (spinning) wait policy;
- ``shared``: :func:`tladvisor.runtime.threads.configure_threads` with no request, as the CLI does: each
  process counts the tladvisor processes running (a private registry folder, so other users'
  runs do not enter the numbers) and takes its share of the cores.

The solo run and the two concurrent runs use the same policy; the ratio is concurrent / solo
images/s per process (the target: at least 0.40 with ``shared``). The two concurrent children are
started together and measure over the same interval (they wait for a "go" line after warming up).

    nice python -m benchmarks.speed.threads --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from benchmarks.common.paths import ROOT
from benchmarks.common.record import add_record_option, recorded



def child(policy: str, seconds: float, warmup: float, batch: int, size: int) -> None:
    if policy == "shared":
        from tladvisor.runtime.threads import configure_threads

        plan = configure_threads()
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(128, 10))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    images, labels = torch.randn(batch, 3, size, size), torch.randint(0, 10, (batch,))

    def step() -> None:
        optimiser.zero_grad()
        nn.functional.cross_entropy(model(images), labels).backward()
        optimiser.step()

    print("ready", flush=True)
    sys.stdin.readline()  # "go": concurrent children start measuring together
    stop = time.perf_counter() + warmup  # warm-up also lets a shared process settle on its share
    while time.perf_counter() < stop:
        step()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
    elapsed = time.perf_counter() - started
    print(json.dumps({"images_per_s": steps * batch / elapsed, "threads": torch.get_num_threads(),
                      "source": plan.source if policy == "shared" else "torch default"}), flush=True)


def run_together(count: int, policy: str, args: argparse.Namespace, registry: str) -> list[dict]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "TLADVISOR_RUNTIME_DIR": registry}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TLADVISOR_THREADS",
                 "TLADVISOR_PLANNED_THREADS", "OMP_WAIT_POLICY"):
        env.pop(name, None)  # the policy alone decides
    # as a module: a script's own folder first on sys.path would let benchmarks/speed/ shadow the standard library
    command = [sys.executable, "-m", "benchmarks.speed.threads", "--child", policy, "--seconds", str(args.seconds),
               "--warmup", str(args.warmup), "--batch", str(args.batch), "--size", str(args.size)]
    children = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
                for _ in range(count)]
    try:
        for process in children:
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a child failed to start")
        for process in children:
            process.stdin.write("go\n")
            process.stdin.flush()
        return [json.loads(process.stdout.readline()) for process in children]
    finally:
        for process in children:
            process.wait(timeout=args.seconds * 10 + 60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--policies", nargs="+", default=["greedy", "shared"], choices=["greedy", "shared"])
    parser.add_argument("--child", choices=["greedy", "shared"], help=argparse.SUPPRESS)
    add_record_option(parser, "speed/threads.md")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.warmup, args.batch, args.size)
        return
    with recorded(args.record, "benchmarks.speed.threads"):
        compare(args)


def compare(args: argparse.Namespace) -> None:
    print(f"cores available: {len(os.sched_getaffinity(0))}; load: {os.getloadavg()}")
    results = {}
    for policy in args.policies:
        with tempfile.TemporaryDirectory() as registry:
            solo = run_together(1, policy, args, registry)[0]
            pair = run_together(2, policy, args, registry)
        ratios = [run["images_per_s"] / solo["images_per_s"] for run in pair]
        print(f"{policy:7s} solo {solo['images_per_s']:7.1f} img/s ({solo['threads']} threads) | concurrent "
              + ", ".join(f"{run['images_per_s']:7.1f} img/s ({run['threads']} threads)" for run in pair)
              + f" | ratio {min(ratios):.2f} / {max(ratios):.2f}")
        results[policy] = (solo, pair)
    if len(results) == 2:  # on a loaded machine a spinning solo run is slow too: compare across policies
        best_solo = max(results[p][0]["images_per_s"] for p in results)
        worst = {p: min(run["images_per_s"] for run in results[p][1]) / best_solo for p in results}
        print("slowest concurrent run / fastest solo run: "
              + ", ".join(f"{p} {ratio:.2f}" for p, ratio in worst.items()))
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
