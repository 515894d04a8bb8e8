"""Training throughput: pairforge's loop vs. a reference loop written like the official pix2pix code.

Measures, in one process on one device:

- ``baseline``: per-sample PIL loading from image files, resize 286 / crop 256 / flip on the CPU
  (bicubic, as the official code), batch 1, fp32, the same networks and losses, ``cudnn.benchmark``
  on CUDA as the official code sets it;
- ``pairforge_batch1``: ``pairforge.trainer.loop.train`` from shards, same recipe (batch 1);
- on CUDA also ``compute_ceiling`` (random tensors already on the GPU, batch ``--batch-size``,
  bf16, channels_last) and ``pairforge_batched`` (end to end from shards at that batch size),
  with their ratio and the data-wait fraction.

Both sides are timed the same way: one warm-up window, then the median images/s of fixed-size
step windows (synchronised on CUDA). Prints one JSON summary. ``--quick`` is a reduced CPU smoke run (small widths, few steps).

    python benchmarks/bench_train.py --device cpu
    python benchmarks/bench_train.py --device cuda --batch-size 64 --compile
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pairforge.trainer.config import ModelConfig, TrainConfig
from pairforge.trainer.data import default_num_workers
from pairforge.trainer.loop import train
from pairforge.trainer.losses import discriminator_loss, generator_gan_loss, l1_loss
from pairforge.trainer.networks import build_discriminator, build_generator


def make_data(root: Path, count: int, size: int) -> tuple[Path, Path]:
    """Write the same pairs as image files (baseline) and as a shard set (pairforge)."""
    import cv2
    import skimage.data
    import webdataset as wds

    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    files, shards = root / "files", root / "shards"
    files.mkdir(parents=True)
    shards.mkdir(parents=True)
    with wds.TarWriter(str(shards / "train-000000.tar"), mtime=0) as sink:
        for index in range(count):
            photo = photos[index % 4]
            side = min(photo.shape[:2])
            photo = cv2.resize(np.roll(photo[:side, :side], 13 * index, axis=1), (size, size), interpolation=cv2.INTER_AREA)
            edges = 255 - cv2.Canny(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), 60, 120)
            Image.fromarray(edges).save(files / f"{index:05d}_a.png")
            Image.fromarray(photo).save(files / f"{index:05d}_b.jpg", quality=95)
            sink.write({
                "__key__": f"{index:05d}",
                "a.png": (files / f"{index:05d}_a.png").read_bytes(),
                "b.jpg": (files / f"{index:05d}_b.jpg").read_bytes(),
                "json": json.dumps({"key": f"{index:05d}", "height": size, "width": size}).encode(),
            })
    dataset = {
        "format": "pairforge.shards/1", "kind": "edges", "a_channels": 1, "b_channels": 3, "b_format": "jpg",
        "palette": None, "splits": {"train": {"count": count, "shards": ["train-000000.tar"]}},
        "shards": [], "source": {"kind": "edges"}, "created_by": "bench_train.py",
    }
    (shards / "dataset.json").write_text(json.dumps(dataset))
    return files, shards


def _models(model: ModelConfig, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    return build_generator(model).to(device).train(), build_discriminator(model).to(device).train()


def _train_step(generator, discriminator, opt_g, opt_d, x, y, autocast) -> None:
    with autocast:
        fake = generator(x)
    for p in discriminator.parameters():
        p.requires_grad_(True)
    opt_d.zero_grad(set_to_none=True)
    with autocast:
        loss_d = discriminator_loss(discriminator(torch.cat([x, y], 1)), discriminator(torch.cat([x, fake.detach()], 1)), "vanilla")
    loss_d.backward()
    opt_d.step()
    for p in discriminator.parameters():
        p.requires_grad_(False)
    opt_g.zero_grad(set_to_none=True)
    with autocast:
        loss_g = generator_gan_loss(discriminator(torch.cat([x, fake], 1)), "vanilla") + 100 * l1_loss(fake, y)
    loss_g.backward()
    opt_g.step()


def baseline(files: Path, model: ModelConfig, device: torch.device, steps: int, window: int) -> float:
    """The official recipe: PIL per sample, CPU resize/crop/flip, batch 1, fp32. Returns images/s.

    Timed like :func:`pairforge_run`: ``window`` warm-up steps, then ``steps`` steps in windows of
    ``window``; the median of the windows' images/s. On CUDA ``cudnn.benchmark`` is on, as the
    reference's BaseModel sets it (pairforge's loop does the same when not deterministic).
    """
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    generator, discriminator = _models(model, device)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    keys = sorted(p.name[:-6] for p in files.glob("*_a.png"))
    load, crop = 286, model.crop_size
    rng = random.Random(0)
    rates: list[float] = []
    start = time.perf_counter()
    for step in range(window + steps):
        key = keys[step % len(keys)]
        a = Image.open(files / f"{key}_a.png").convert("L").resize((load, load), Image.BICUBIC)
        b = Image.open(files / f"{key}_b.jpg").convert("RGB").resize((load, load), Image.BICUBIC)
        x0, y0 = rng.randint(0, load - crop), rng.randint(0, load - crop)
        a, b = a.crop((x0, y0, x0 + crop, y0 + crop)), b.crop((x0, y0, x0 + crop, y0 + crop))
        if rng.random() < 0.5:
            a, b = a.transpose(Image.FLIP_LEFT_RIGHT), b.transpose(Image.FLIP_LEFT_RIGHT)
        x = torch.from_numpy(np.asarray(a, np.float32) / 127.5 - 1)[None, None].to(device)
        y = torch.from_numpy(np.asarray(b, np.float32).transpose(2, 0, 1) / 127.5 - 1)[None].to(device)
        _train_step(generator, discriminator, opt_g, opt_d, x, y, torch.autocast(device.type, enabled=False))
        if (step + 1) % window == 0:
            if device.type == "cuda":
                torch.cuda.synchronize()
            now = time.perf_counter()
            rates.append(window / (now - start))
            start = now
    return statistics.median(rates[1:] or rates)


def compute_ceiling(model: ModelConfig, device: torch.device, batch: int, steps: int, warmup: int, compile_: bool) -> float:
    """Same step on random tensors already on the device (bf16, channels_last). Returns images/s."""
    generator, discriminator = _models(model, device)
    generator = generator.to(memory_format=torch.channels_last)
    discriminator = discriminator.to(memory_format=torch.channels_last)
    if compile_:
        generator, discriminator = torch.compile(generator), torch.compile(discriminator)
    opt_g = torch.optim.Adam(generator.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    size = model.crop_size
    x = torch.rand(batch, 1, size, size, device=device).mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    y = torch.rand(batch, 3, size, size, device=device).mul(2).sub(1).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16)
    for step in range(warmup + steps):
        if step == warmup:
            torch.cuda.synchronize() if device.type == "cuda" else None
            start = time.perf_counter()
        _train_step(generator, discriminator, opt_g, opt_d, x, y, autocast)
    torch.cuda.synchronize() if device.type == "cuda" else None
    return steps * batch / (time.perf_counter() - start)


def pairforge_run(shards: Path, output: Path, model: ModelConfig, device: str, batch: int, steps: int,
                  workers: int, compile_: bool, precision: str, window: int | None = None) -> dict[str, float]:
    """pairforge's loop from shards: ``window`` warm-up steps then ``steps`` steps, logged every ``window``;
    images/s and data wait are the medians of the log windows after the first (the baseline's protocol)."""
    window = window or max(1, steps // 5)
    config = TrainConfig.from_options(
        shards=str(shards), batch_size=batch, num_workers=workers, shuffle_buffer=64, max_val_samples=0, load_size=286,
        **dataclasses.asdict(model), steps=steps + window, output=str(output), device=device, precision=precision,
        compile=compile_, log_every=window, sample_every=0, val_every=0, checkpoint_every=0,
    )
    result = train(config)
    rows = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    steady = [row for row in rows if "images_per_s" in row][1:] or rows
    return {
        "images_per_s": statistics.median(row["images_per_s"] for row in steady),
        "data_wait_fraction": statistics.median(row["data_wait_fraction"] for row in steady),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="Reduced CPU smoke run.")
    parser.add_argument("--steps", type=int, default=None, help="Timed steps per measurement.")
    parser.add_argument("--batch-size", type=int, default=64, help="Batch of the GPU end-to-end and ceiling runs.")
    parser.add_argument("--num-workers", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="torch.compile in the GPU runs.")
    parser.add_argument("--channels", type=int, default=64, help="Generator/discriminator width.")
    parser.add_argument("--batch1-only", action="store_true",
                        help="Only the batch-1 measurements (baseline, pairforge, and with --compile the compiled one).")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device")
    channels = 8 if args.quick else args.channels
    steps = args.steps or (4 if args.quick else (20 if device.type == "cpu" else 200))
    workers = args.num_workers if args.num_workers is not None else default_num_workers(device.type)
    model = ModelConfig(generator="unet_256", in_channels=1, out_channels=3, generator_channels=channels,
                        discriminator_channels=channels, crop_size=256)
    summary: dict[str, object] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "steps": steps,
        "generator": "unet_256", "channels": channels, "size": 256,
    }
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        files, shards = make_data(root, count=max(8, 2 * args.batch_size if device.type == "cuda" else 8), size=300)
        window = max(1, steps // 5)
        summary["timing"] = f"median images/s of {window}-step windows after one {window}-step warm-up window, both sides"
        summary["baseline_images_per_s"] = baseline(files, model, device, steps, window)
        batch1 = pairforge_run(shards, root / "runs", model, args.device, 1, steps, workers, False, "fp32", window)
        summary["pairforge_batch1_images_per_s"] = batch1["images_per_s"]
        summary["pairforge_batch1_data_wait"] = batch1["data_wait_fraction"]
        summary["batch1_speedup_vs_baseline"] = batch1["images_per_s"] / summary["baseline_images_per_s"]
        if device.type == "cuda":
            if args.compile:
                compiled = pairforge_run(shards, root / "runs", model, "cuda", 1, steps, workers, True, "bf16", window)
                summary["pairforge_batch1_compiled_images_per_s"] = compiled["images_per_s"]
                summary["batch1_compiled_speedup_vs_baseline"] = compiled["images_per_s"] / summary["baseline_images_per_s"]
            if args.batch1_only:
                print(json.dumps(summary, indent=2))
                return
            ceiling = compute_ceiling(model, device, args.batch_size, steps, warmup=5, compile_=args.compile)
            batched = pairforge_run(shards, root / "runs", model, "cuda", args.batch_size, steps, workers, args.compile, "bf16")
            summary.update({
                "batch_size": args.batch_size,
                "compute_ceiling_images_per_s": ceiling,
                "pairforge_batched_images_per_s": batched["images_per_s"],
                "pairforge_batched_data_wait": batched["data_wait_fraction"],
                "fraction_of_ceiling": batched["images_per_s"] / ceiling,
                "batched_speedup_vs_baseline": batched["images_per_s"] / summary["baseline_images_per_s"],
            })
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
