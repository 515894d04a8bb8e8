"""The epoch order of the train stream: a uniform permutation per epoch when a reader's share fits in the
shuffle buffer (the paper's small datasets), reproducible from the seed; a streaming buffer beyond it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pairforge.trainer.data import PairStream, load_dataset_info, make_loader
from pairforge.trainer.transforms import Encoding


def _stream(root: Path, **options: object) -> PairStream:
    info = load_dataset_info(str(root))
    encoding = Encoding.from_config({"dataset": info.to_dict(), "data": {}})
    return PairStream(info.splits["train"], encoding, batch_size=1, **options)  # type: ignore[arg-type]


def _epochs(batches, epochs: int, workers: int = 1) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The keys of the first ``epochs`` epochs, in the order they came (each worker's epochs only go up)."""
    order: list[list[str]] = [[] for _ in range(epochs)]
    finished: set[int] = set()
    for batch in batches:
        epoch = int(batch["epochs"][0])
        if epoch < epochs:
            order[epoch].extend(batch["keys"])
        else:
            finished.add(int(batch["worker"]))
            if len(finished) == workers:
                break
    return order


@pytest.fixture(scope="module")
def facades_sized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 train pairs in one shard: the size of the paper's smaller sets, read in key order."""
    from tests.trainer.conftest import write_shards

    return write_shards(tmp_path_factory.mktemp("shuffle") / "shards", kind="gray", count=200, size=8, shards=1, val=0)


ALL_200 = [f"train_{i:05d}" for i in range(200)]


def test_a_split_that_fits_is_permuted_uniformly_every_epoch(facades_sized: Path) -> None:
    """Every sample once per epoch, a new order each epoch, and no trace of the read order.

    The old streaming buffer (1000, first draw once 100 are held) always began an epoch with one of
    the first 100 samples read and kept early samples early; a uniform permutation does neither."""
    orders = _epochs(iter(_stream(facades_sized, seed=3)), 12)
    for order in orders:
        assert sorted(order) == ALL_200  # each sample exactly once
    assert len({tuple(order) for order in orders}) == 12  # the order changes between epochs
    assert any(int(order[0][-5:]) >= 100 for order in orders)  # an epoch may begin anywhere
    # position in the epoch vs position in the shard: uncorrelated (a buffer keeps early samples early)
    read_index = np.arange(200)
    correlations = [np.corrcoef(read_index, [order.index(key) for key in ALL_200])[0, 1] for order in orders]
    assert abs(float(np.mean(correlations))) < 0.1
    # each sample lands in the first half of the epoch about half of the time
    first_half = np.mean([[order.index(key) < 100 for key in ALL_200] for order in orders], axis=0)
    assert abs(float(first_half[:100].mean()) - 0.5) < 0.1


def test_the_order_is_reproducible_from_the_seed(facades_sized: Path) -> None:
    same = [_epochs(iter(_stream(facades_sized, seed=7)), 3) for _ in range(2)]
    assert same[0] == same[1]
    assert _epochs(iter(_stream(facades_sized, seed=8)), 3) != same[0]


@pytest.mark.parametrize("shards", [1, 4], ids=["fewer-shards-than-readers", "shards-split-by-reader"])
def test_each_sample_goes_to_exactly_one_reader_per_epoch(shard_factory, shards: int) -> None:
    """Two ranks: their epochs together hold every sample once; each rank's order changes between epochs.

    With fewer shards than readers every reader reads every shard, and one permutation of all samples
    (the same in every reader) is dealt out, so a sample's reader changes between epochs too."""
    root = shard_factory(kind="gray", count=40, size=8, shards=shards, val=0)
    ranks = [_epochs(iter(_stream(root, seed=1, rank=rank, world_size=2)), 4) for rank in range(2)]
    for epoch in range(4):
        together = ranks[0][epoch] + ranks[1][epoch]
        assert sorted(together) == [f"train_{i:05d}" for i in range(40)]
    for orders in ranks:
        assert len({tuple(order) for order in orders}) == 4
    if shards == 1:
        assert len({frozenset(order) for order in ranks[0]}) > 1  # rank 0 gets other samples in other epochs


def test_dataloader_workers_share_an_epoch_without_repeats(shard_factory) -> None:
    root = shard_factory(kind="gray", count=24, size=8, shards=4, val=0)
    loader = make_loader(_stream(root, seed=2, workers=2), 2, pin_memory=False)
    orders = _epochs(iter(loader), 2, workers=2)
    assert sorted(orders[0]) == sorted(orders[1]) == [f"train_{i:05d}" for i in range(24)]
    assert orders[0] != orders[1]


def test_a_split_larger_than_the_buffer_streams_every_sample_once(facades_sized: Path) -> None:
    """Beyond the buffer (here 32 of 200): still each sample once per epoch, through a 32-sample window."""
    orders = _epochs(iter(_stream(facades_sized, seed=3, shuffle_buffer=32)), 2)
    for order in orders:
        assert sorted(order) == ALL_200
        # a streaming window: no sample moves more than the buffer's reach ahead of where it was read
        assert all(order.index(key) >= int(key[-5:]) - 33 for key in order)
