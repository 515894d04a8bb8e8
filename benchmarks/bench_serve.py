"""Round trip of `pairforge serve` for one user: POST /api/predict with a 256x256 edge map -> PNG.

Builds a 256x256 edges run (unet_256, the paper's 64 base channels by default; trained one step:
speed does not depend on the weights), starts the real server on 127.0.0.1 (random port) and
sends requests one after another, as one user drawing. Baseline in the same run, interleaved
request by request: the bare model call (``Predictor.predict`` on the decoded array, what
`pairforge predict` computes per image), so the ratio is the cost of HTTP, the queue, decoding
and PNG encoding.

    python benchmarks/bench_serve.py                      # 64 channels (paper), 40 requests
    python benchmarks/bench_serve.py --channels 32        # the demo's width
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine  # noqa: E402

from pairforge.commands.serve import load_run_model  # noqa: E402
from pairforge.serve import BackgroundServer, Job, PageServer, ServeConfig  # noqa: E402
from pairforge.trainer.config import TrainConfig  # noqa: E402
from pairforge.trainer.loop import train  # noqa: E402

SIZE = 256


def edge_map(photo: np.ndarray) -> np.ndarray:
    gray = cv2.resize(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return 255 - cv2.Canny(gray, 60, 120)


def make_run(root: Path, channels: int) -> Path:
    """A 256x256 edges shard set (Canny, 8 pairs) and a one-step unet_256 run on it."""
    import hashlib

    import webdataset as wds
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    shards = root / "shards"
    shards.mkdir(parents=True)
    tar = shards / "train-000000.tar"
    with wds.TarWriter(str(tar), mtime=0) as sink:
        for index in range(8):
            photo = cv2.resize(photos[index % 4], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
            sink.write({"__key__": f"k{index}", "a.png": cv2.imencode(".png", edge_map(photo))[1].tobytes(),
                        "b.png": cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes(),
                        "json": json.dumps({"key": f"k{index}"}).encode()})
    stats = {"count": 8, "bytes": tar.stat().st_size, "sha256": hashlib.sha256(tar.read_bytes()).hexdigest()}
    dataset = {"format": "pairforge.shards/1", "kind": "edges", "a_channels": 1, "b_channels": 3, "b_format": "png",
               "palette": None, "splits": {"train": {"count": 8, "shards": [tar.name]}},
               "shards": [{"name": tar.name, "split": "train", **stats}],
               "source": {"kind": "edges", "stage": {}, "command": "bench_serve"}, "created_by": "bench_serve"}
    (shards / "dataset.json").write_text(json.dumps(dataset))
    config = TrainConfig.from_options(
        shards=str(shards), batch_size=1, num_workers=0, shuffle_buffer=8, max_val_samples=1, load_size=286,
        crop_size=SIZE, generator="unet_256", generator_channels=channels, discriminator_channels=channels,
        steps=1, output=str(root / "runs"), device="cpu", log_every=1, sample_every=0, val_every=0, checkpoint_every=0,
    )
    return Path(train(config).run_dir)


def post_png(url: str, image_png: bytes, seed: int) -> bytes:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            "Content-Type: image/png\r\n\r\n").encode() + image_png + (
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="seed"\r\n\r\n{seed}\r\n--{boundary}--\r\n').encode()
    request = urllib.request.Request(url + "api/predict", data=body,
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return response.read()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=64, help="generator base channels (64 = paper)")
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from skimage import data

    with tempfile.TemporaryDirectory(prefix="bench_serve_") as folder:
        run = make_run(Path(folder), args.channels)
        model = load_run_model(str(run), device=args.device)
        edges = edge_map(data.chelsea())
        edges_png = cv2.imencode(".png", edges)[1].tobytes()
        rgb = np.repeat(edges[..., None], 3, axis=2)

        bare: list[float] = []
        round_trips: list[float] = []
        with BackgroundServer(PageServer(model, ServeConfig(port=0))) as url:
            # interleaved, so both see the same load on a shared machine
            for index in range(args.warmup + args.requests):
                started = time.perf_counter()
                [output] = model.run([Job(rgb, seed=index)])  # baseline: the model call alone
                middle = time.perf_counter()
                post_png(url, edges_png, seed=index)  # one user: one request at a time
                ended = time.perf_counter()
                assert isinstance(output, np.ndarray)
                if index >= args.warmup:
                    bare.append(middle - started)
                    round_trips.append(ended - middle)

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"median_ms": round(1000 * statistics.median(ordered), 1),
                "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))], 1)}

    served, baseline = summary(round_trips), summary(bare)
    print(json.dumps({
        "machine": machine(), "device": args.device, "generator": f"unet_256, {args.channels} channels",
        "input": f"{SIZE}x{SIZE} edge map PNG", "requests": args.requests,
        "baseline_model_call": baseline, "serve_round_trip": served,
        "ratio_round_trip_over_model_call": round(served["median_ms"] / baseline["median_ms"], 3),
        "target_median_ms": 300, "met": served["median_ms"] <= 300,
    }, indent=2))


if __name__ == "__main__":
    main()
