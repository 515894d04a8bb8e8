"""The loop's named steps: D before G in a step, the EMA's known answer, two resumes without a GAN."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pairforge.trainer import ddp, loop, run
from pairforge.trainer.augment import PairAugment
from pairforge.trainer.checkpoint import list_checkpoints, load_state
from pairforge.trainer.data import iterate_split
from pairforge.trainer.inference import InferenceConfig, Predictor
from pairforge.trainer.loop import train
from pairforge.trainer.run import resume_config


def _resolved(config):  # type: ignore[no-untyped-def]
    return run.resolve_config(config)[0]


def test_the_step_updates_d_first_and_g_meets_the_updated_d(edge_shards: Path, tiny_config, tmp_path: Path) -> None:
    """pix2pix's order: G(A) once; D on real then fake, D updated; then G judged by that updated D."""
    config = _resolved(tiny_config(edge_shards, tmp_path))
    torch.manual_seed(0)
    models = run.build_models(config, torch.device("cpu"))
    assert models.discriminator is not None
    handles = run.training_handles(models, False, ddp.Distributed(), torch.device("cpu"))
    first = next(models.discriminator.parameters())
    seen: list[tuple[str, torch.Tensor]] = []
    models.generator.register_forward_hook(lambda module, args, out: seen.append(("G", first.detach().clone())))
    models.discriminator.register_forward_hook(lambda module, args, out: seen.append(("D", first.detach().clone())))
    before = first.detach().clone()
    x = torch.rand(2, config.model.in_channels, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    losses = loop.train_step(models, handles, x, y, config.loss, True, contextlib.nullcontext())

    assert [name for name, _ in seen] == ["G", "D", "D", "D"]
    assert all(torch.equal(weights, before) for _, weights in seen[:3])  # G(A), D(real), D(fake): the old D
    assert not torch.equal(seen[3][1], before)  # G's GAN term: D after this step's update
    assert list(losses) == ["loss_d", "loss_g_l1", "loss_g_gan"]
    assert not any(p.requires_grad for p in models.discriminator.parameters())  # frozen again for G


def test_ema_is_the_known_moving_average(edge_shards: Path, tiny_config, tmp_path: Path) -> None:
    """After one step with decay d: EMA = initial + (1 - d) (G after the step); buffers copied from G."""
    config = tiny_config(edge_shards, tmp_path, steps=1, optim__ema=0.75)
    result = train(config)
    torch.manual_seed(config.seed)  # the loop's initial weights
    initial = run.build_models(_resolved(config), torch.device("cpu")).generator.state_dict()
    found = list_checkpoints(result.run_dir)[-1]
    generator = load_file(str(found / "generator.safetensors"))
    ema = load_file(str(found / "generator_ema.safetensors"))
    parameters = {name for name, _ in run.build_models(_resolved(config), torch.device("cpu")).generator.named_parameters()}
    assert parameters and set(ema) == set(generator)
    for name in generator:
        # parameters move 1 - d of the way to G; buffers (batch-norm running statistics) are G's
        expected = initial[name].lerp(generator[name], 0.25) if name in parameters else generator[name]
        torch.testing.assert_close(ema[name], expected, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(ema[name], generator[name]) for name in parameters)
    # and the run's validation scores are the EMA generator's (its test-time network)
    _, info, encoding = run.resolve_config(config)
    network = run.build_models(_resolved(config), torch.device("cpu")).generator
    network.load_state_dict(ema)
    inputs = loop.Inputs(PairAugment(config.augment, nearest_a=encoding.label_a), encoding, torch.device("cpu"))
    source = iterate_split(info.splits["val"], encoding, 8, config.data.max_val_samples)
    document = json.loads((Path(result.run_dir) / "config.json").read_text())
    predictor = Predictor(network, document, InferenceConfig(batch_size=8, max_side=config.augment.crop_size,
                                                             scale="native"))
    scores = loop.validate(predictor, source, inputs, contextlib.nullcontext(), None, tmp_path / "grid.png")
    assert scores and scores == result.validation


def _losses(run_dir: Path) -> dict[int, dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: {k: v for k, v in row.items() if k.startswith(("loss_", "lr"))} for row in rows
            if row.get("split") != "val"}


@pytest.mark.slow
def test_two_resumes_without_gan_match_one_run(shard_factory, tiny_config, tmp_path: Path) -> None:
    """L1 only (no D, no D optimizer in the checkpoint): 2 + 2 + 2 steps give the 6-step run bit for bit."""
    shards = shard_factory(kind="edges", count=6, shards=2)
    options = dict(deterministic=True, loss__use_gan=False, checkpoint_every=4)
    straight = train(tiny_config(shards, tmp_path / "straight", steps=6, **options))
    part = train(tiny_config(shards, tmp_path / "split", steps=6, **options), stop_at=2)
    part = train(resume_config(part.run_dir), resume=part.run_dir, stop_at=4)
    assert load_state(list_checkpoints(part.run_dir)[-1])["optimizer_d"] is None
    resumed = train(resume_config(part.run_dir), resume=part.run_dir)
    assert resumed.steps == 6
    expected = load_file(str(list_checkpoints(straight.run_dir)[-1] / "generator.safetensors"))
    actual = load_file(str(list_checkpoints(resumed.run_dir)[-1] / "generator.safetensors"))
    assert expected.keys() == actual.keys()
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0, msg=key)
    assert not (list_checkpoints(resumed.run_dir)[-1] / "discriminator.safetensors").exists()
    # every step's logged losses and lr too, not only the end point
    assert _losses(resumed.run_dir) == _losses(straight.run_dir)
    assert sorted(_losses(straight.run_dir)) == [1, 2, 3, 4, 5, 6]
