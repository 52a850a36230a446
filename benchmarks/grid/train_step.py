"""What one training step costs per image, by how much of the network trains (issue #22: sizing the grid).

    .venv/bin/python -m benchmarks.grid.train_step --threads 1 --image-size 64 --batch-size 64

For EfficientNet-Lite0 with a 6-class head: a training step (forward, backward, AdamW) with the top stage
only, half the stages, every stage from pretrained weights and from random ones, against an inference
forward of the same network; then the share of a top-stage step that ``convolution_backward`` takes
(torch.profiler), which explains why training only the top stage still costs about three forwards on a
CPU. Run it on an idle machine: it prints milliseconds per image, the median of ``--repeats`` timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    import torch

    from tladvisor.plugins import PluginHost
    from tladvisor.tuning.strategies import TrialConfig, build_model, train_mode

    torch.set_num_threads(args.threads)
    spec = PluginHost().backbone("efficientnet_lite0")
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    labels = torch.randint(0, 6, (args.batch_size,))

    def per_image(step) -> float:
        step()  # warm-up
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return 1000 * statistics.median(times) / args.batch_size

    print(f"efficientnet_lite0, {args.image_size} px, batch {args.batch_size}, {args.threads} thread(s), "
          f"median of {args.repeats}: ms per image")
    for strategy, depth, label in (("partial_freeze", spec.n_stages - 1, "top stage only"),
                                   ("partial_freeze", spec.n_stages // 2, "half the stages"),
                                   ("full_finetune", 0, "every stage"), ("from_scratch", 0, "from scratch")):
        model = build_model(spec, TrialConfig(backbone=spec.name, strategy=strategy, freeze_depth=depth), 6)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        train_mode(model, spec, depth)

        def step(model=model, optimizer=optimizer) -> None:
            loss = torch.nn.functional.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train = per_image(step)
        model.eval()
        with torch.inference_mode():
            forward = per_image(lambda model=model: model(images))
        print(f"  {strategy}@{depth} ({label}): train step {train:.2f}, inference forward {forward:.2f}, "
              f"ratio {train / forward:.1f}")
    model = build_model(spec, TrialConfig(backbone=spec.name, strategy="partial_freeze",
                                          freeze_depth=spec.n_stages - 1), 6)
    train_mode(model, spec, spec.n_stages - 1)
    from torch.profiler import profile

    with profile() as profiled:
        for _ in range(3):
            torch.nn.functional.cross_entropy(model(images), labels).backward()
    events = profiled.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    backward = sum(e.self_cpu_time_total for e in events if e.key == "aten::convolution_backward")
    print(f"  top stage only: convolution_backward is {100 * backward / max(total, 1):.0f} % of a step's CPU time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
