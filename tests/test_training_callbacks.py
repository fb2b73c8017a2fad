"""Training callbacks: the event order a user callback sees, stopping from a callback, a
callback's own checkpoint entries across a resume, and clashing entry names."""

import ase.io
import pytest
import torch
from training_fixtures import config, one_thread, quiet  # noqa: F401

from gnnff.training import Callback, Trainer
from gnnff.training.callbacks import StepResult, TrainerView


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from gnnff.testing.synthetic import make_dataset

    d = tmp_path_factory.mktemp("cbdata")
    ase.io.write(d / "train.extxyz", make_dataset(4, seed=5, n_formula=2))
    ase.io.write(d / "valid.extxyz", make_dataset(1, seed=2, n_formula=2))
    return d


class Recorder(Callback):
    """Records every event and stops training at the end of epoch ``stop_after``."""

    def __init__(self, stop_after: int) -> None:
        self.stop_after = stop_after
        self.events: list[tuple] = []
        self.batches_seen = 0

    def on_train_begin(self, trainer: TrainerView) -> None:
        self.events.append(("train_begin", trainer.epoch, trainer.step))

    def on_epoch_begin(self, trainer: TrainerView) -> None:
        self.events.append(("epoch_begin", trainer.epoch))

    def on_batch_end(self, trainer: TrainerView, step: StepResult) -> None:
        assert step.batch is not None and step.loss.ndim == 0
        self.batches_seen += 1
        self.events.append(("batch_end", trainer.step))

    def on_epoch_end(self, trainer: TrainerView, row: dict) -> None:
        assert row is trainer.rows[-1] and "valid_loss" in row
        self.events.append(("epoch_end", trainer.epoch, row["epoch"]))
        if trainer.epoch >= self.stop_after:
            trainer.stop_training = True

    def on_train_end(self, trainer: TrainerView) -> None:
        self.events.append(("train_end", trainer.epoch, trainer.summary["epochs_run"]))

    def state_dict(self) -> dict:
        return {"recorder_batches": self.batches_seen}

    def load_state_dict(self, checkpoint) -> None:
        self.batches_seen = checkpoint.get("recorder_batches", 0)


def test_user_callback_sees_events_in_order_and_stops_training(data, tmp_path):
    cfg = config(data, training={"epochs": 5, "batch_size": 2})  # 4 structures: 2 steps/epoch
    rec = Recorder(stop_after=2)
    summary = Trainer(cfg, tmp_path / "run", log=quiet, callbacks=[rec]).fit()
    assert rec.events == [
        ("train_begin", 0, 0),
        ("epoch_begin", 0),
        ("batch_end", 1),
        ("batch_end", 2),
        ("epoch_end", 1, 1),
        ("epoch_begin", 1),
        ("batch_end", 3),
        ("batch_end", 4),
        ("epoch_end", 2, 2),
        ("train_end", 2, 2),
    ]
    assert summary["epochs_run"] == 2
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ckpt["epoch"] == 2 and len(ckpt["metrics_rows"]) == 2
    assert ckpt["recorder_batches"] == 4  # the callback's own entry

    # resume: the callback gets its state back before on_train_begin
    (tmp_path / "run" / "model.pt").unlink()
    more = config(data, training={"epochs": 3, "batch_size": 2})
    again = Recorder(stop_after=99)
    Trainer(more, tmp_path / "run", resume=True, log=quiet, callbacks=[again]).fit()
    assert again.events[0] == ("train_begin", 2, 4)
    assert again.events[-1] == ("train_end", 3, 3)
    assert again.batches_seen == 6


def test_callback_entry_clashing_with_the_trainer_is_refused(data, tmp_path):
    class Clash(Callback):
        def state_dict(self) -> dict:
            return {"epoch": 7}

    cfg = config(data, training={"epochs": 1})
    with pytest.raises(ValueError, match=r"Clash saves checkpoint entries \['epoch'\]"):
        Trainer(cfg, tmp_path / "clash", log=quiet, callbacks=[Clash()]).fit()
