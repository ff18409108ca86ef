"""The training engine: precision policies, exact resume, signals, the NaN guard, schedules, EMA, logs, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import attrs
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from test_datasets import write_animal
from torch import nn

import ganzoo_core as gz
from ganzoo_core.policy import Policy
from ganzoo_core.schedules import ScheduleCfg, make_scheduler
from ganzoo_core.training import TrainCfg, Trainer, train

TINY = {"generator_kwargs": {"ngf": 8}, "discriminator_kwargs": {"ndf": 8}}
FAST = TrainCfg(steps=6, batch_size=8, log_every=1, sample_every=0, checkpoint_every=0, n_samples=4, progress=False)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    root = write_animal(tmp_path_factory.mktemp("animal"))
    return gz.create_dataset("animal_mnist.train", root=str(root))


def tiny_dcgan(**overrides):
    torch.manual_seed(0)
    return gz.create_objective("dcgan.28", **{**TINY, **overrides})


def train_meta(path: Path) -> dict:
    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()["ganzoo.train"])


@pytest.mark.parametrize("policy", [Policy(), Policy(precision="bf16"), Policy(channels_last=True),
                                    Policy(precision="bf16", channels_last=True)], ids=lambda p: p.name)
def test_policies_train_and_are_recorded(policy: Policy, data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, policy=policy))
    assert all(torch.isfinite(torch.tensor(r["loss_D"])) for r in result.history)
    meta = train_meta(result.checkpoint)
    assert meta["policy_name"] == policy.name and meta["policy"]["precision"] == policy.precision
    assert gz.load(result.checkpoint).cfg == tiny_dcgan().cfg  # still loadable as plain weights


def test_bf16_changes_the_numbers(data, tmp_path: Path) -> None:
    """The policy is really applied: bf16 autocast gives other (close) losses than fp32."""
    fp32 = train(tiny_dcgan(), data, tmp_path / "a", FAST).history
    bf16 = train(tiny_dcgan(), data, tmp_path / "b", attrs.evolve(FAST, policy=Policy(precision="bf16"))).history
    first = (fp32[0]["loss_D"], bf16[0]["loss_D"])
    assert first[0] != first[1] and abs(first[0] - first[1]) < 0.05


def test_compile_policy(data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2, policy=Policy(compile=True)))
    assert train_meta(result.checkpoint)["policy_name"] == "fp32+compile"
    loaded = gz.load(result.checkpoint)  # compiled in place: parameter names unchanged
    assert set(loaded.state_dict()) == set(tiny_dcgan().state_dict())


def test_fp16_needs_cuda(data, tmp_path: Path) -> None:
    with pytest.raises(gz.GanzooError, match="fp16 needs a CUDA device"):
        train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, policy=Policy(precision="fp16")))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fp16_with_grad_scaler_on_cuda(data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, device="cuda", policy=Policy(precision="fp16")))
    assert train_meta(result.checkpoint)["scaler"]["scale"] > 0


def test_interrupted_and_resumed_run_gives_the_same_losses(data, tmp_path: Path) -> None:
    cfg = attrs.evolve(FAST, steps=12, ema=0.9, schedule=ScheduleCfg(kind="linear", decay_start=4))
    whole = train(tiny_dcgan(), data, tmp_path / "whole", cfg)

    def stop_at_5(row: dict[str, float]) -> None:
        if row["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the engine: checkpoint, then stop

    first = train(tiny_dcgan(), data, tmp_path / "split", cfg, on_log=stop_at_5)
    assert first.interrupted and first.step == 5
    rest = train(tiny_dcgan(), data, tmp_path / "split", attrs.evolve(cfg, resume=True))
    assert rest.step == 12 and [r["step"] for r in rest.history] == list(range(6, 13))
    keys = ("step", "loss_D", "loss_G", "D/d_real", "D/d_fake", "G/g")
    split = [tuple(r[k] for k in keys) for r in first.history + rest.history]
    assert split == [tuple(r[k] for k in keys) for r in whole.history]  # exactly, not approximately
    a, b = gz.load(whole.checkpoint, ema=True), gz.load(rest.checkpoint, ema=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    rows = [json.loads(ln)["step"] for ln in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert rows == list(range(1, 13))


def test_time_limit_stops_with_a_checkpoint_and_resume_finishes(data, tmp_path: Path) -> None:
    cfg = attrs.evolve(FAST, steps=6, max_minutes=1e-9)  # over the limit after the first step
    first = train(tiny_dcgan(), data, tmp_path, cfg)
    assert first.step == 1 and not first.interrupted and train_meta(first.checkpoint)["step"] == 1
    assert [p.name for p in first.samples] == ["samples_0000001.png"] and (tmp_path / "samples.png").exists()
    rest = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=6, resume=True))
    assert rest.step == 6 and [r["step"] for r in rest.history] == [2, 3, 4, 5, 6]
    with pytest.raises(gz.GanzooError, match="max_minutes must be positive, got 0"):
        TrainCfg(max_minutes=0)


def test_resume_without_checkpoint_starts_fresh_and_weights_only_files_are_refused(data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2, resume=True))
    assert result.step == 2 and result.history[0]["step"] == 1
    gz.save(tiny_dcgan(), tmp_path / "checkpoint.safetensors", overwrite=True)
    with pytest.raises(gz.CheckpointError, match="no training state"):
        train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, resume=True))


def test_sigterm_leaves_a_resumable_checkpoint(tmp_path: Path) -> None:
    root = write_animal(tmp_path)
    cmd = [sys.executable, "-m", "ganzoo_core.cli", "train", "dcgan.28", "--steps", "100000", "--batch-size", "8",
           "--log-every", "1", "--sample-every", "0", "--checkpoint-every", "0", "--no-progress",
           "--set", "generator_kwargs={'ngf': 8}", "--set", "discriminator_kwargs={'ndf': 8}",
           "--data-set", f"root={str(root)!r}", "--out", str(tmp_path / "run")]
    env = {**os.environ, "GANZOO_LOAD_PLUGINS": "dcgan"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "--resume" in err
    step = train_meta(tmp_path / "run" / "checkpoint.safetensors")["step"]
    assert step >= 3
    resumed = subprocess.run([*cmd[:6], str(step + 2), *cmd[7:], "--resume"], env=env, capture_output=True,
                             text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert train_meta(tmp_path / "run" / "checkpoint.safetensors")["step"] == step + 2


@attrs.frozen(kw_only=True)
class NanCfg:
    nan_at: int = 3


class NanObjective(nn.Module):
    """Produces a finite loss until its ``nan_at``-th D step, then NaN."""

    def __init__(self, cfg: NanCfg = NanCfg()) -> None:
        super().__init__()
        self.cfg, self.calls = cfg, 0
        self.networks = nn.ModuleDict({"D": nn.Linear(1, 1)})
        self.phases = (gz.Phase(name="D", networks=("D",)),)

    def loss(self, phase, batch, ctx):
        self.calls += 1
        out = self.networks["D"](batch["image"].mean((1, 2, 3))[:, None]).mean()
        return (out * float("nan") if self.calls >= self.cfg.nan_at else out), {}

    def sample(self, n, batch=None, seed=0):
        return torch.zeros(n, 1, 4, 4)

    def example_batch(self, batch_size=2):
        return {"image": torch.randn(batch_size, 1, 4, 4)}


def test_nan_guard_names_step_and_loss_and_keeps_the_last_checkpoint(data, tmp_path: Path) -> None:
    gz.register_objective("nantest.obj", cfg=NanCfg())(NanObjective)
    try:
        objective = gz.create_objective("nantest.obj")
        with pytest.raises(gz.NonFiniteLossError) as err:
            train(objective, data, tmp_path, attrs.evolve(FAST, checkpoint_every=2))
        assert err.value.step == 3 and err.value.loss_name == "loss_D" and "step 3" in str(err.value)
        assert train_meta(tmp_path / "checkpoint.safetensors")["step"] == 2
        assert torch.isfinite(gz.load(tmp_path / "checkpoint.safetensors").networks["D"].weight).all()
    finally:
        from ganzoo_core._plugins import get_host

        get_host().registry.remove_plugin("test_training")


def test_schedules() -> None:
    def lrs(cfg: ScheduleCfg, steps: int) -> list[float]:
        opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, out = make_scheduler(opt, cfg, steps), []
        for _ in range(steps):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs(ScheduleCfg(), 4) == [1.0] * 4
    assert lrs(ScheduleCfg(kind="linear"), 8) == pytest.approx([1, 1, 1, 1, 1, 0.75, 0.5, 0.25])
    assert lrs(ScheduleCfg(kind="step", step_size=2, gamma=0.5), 6) == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])
    with pytest.raises(ValueError, match="schedule must be one of"):
        ScheduleCfg(kind="cosine")


def test_ema_weights_are_kept_and_used(data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, ema=0.5))
    raw, ema = gz.load(result.checkpoint), gz.load(result.checkpoint, ema=True)
    assert not torch.equal(raw.networks["G"].main[0].weight, ema.networks["G"].main[0].weight)
    assert torch.equal(raw.networks["D"].main[0].weight, ema.networks["D"].main[0].weight)
    assert train_meta(result.checkpoint)["ema"] == {"G": FAST.steps}
    with pytest.raises(gz.CheckpointError, match="no EMA weights"):
        gz.load(train(tiny_dcgan(), data, tmp_path / "plain", FAST).checkpoint, ema=True)
    with pytest.raises(gz.GanzooError, match="not networks of this objective"):
        train(tiny_dcgan(), data, tmp_path / "x", attrs.evolve(FAST, ema=0.9, ema_networks=("G_A",)))


def test_outputs_a_user_watches(data, tmp_path: Path) -> None:
    result = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, sample_every=3))
    assert [p.name for p in result.samples] == ["samples_0000003.png", "samples_0000006.png"]
    curve = Image.open(tmp_path / "loss_curve.png")
    assert curve.size == (700, 400) and len(set(curve.convert("L").getdata())) > 10  # a drawn plot, not blank
    rows = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(r["it_per_s"] > 0 for r in rows)
    if __import__("importlib").util.find_spec("tensorboard"):
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0}).Reload()
        assert [e.step for e in events.Scalars("loss_D")] == [1, 2, 3, 4, 5, 6]
        grids = events.Images("samples")  # the sample grids, as the PNGs hold them
        assert [g.step for g in grids] == [3, 6]
        png = Image.open(__import__("io").BytesIO(grids[-1].encoded_image_string))
        assert png.size == Image.open(tmp_path / "samples_0000006.png").size
        hparams = EventAccumulator(str(next((tmp_path / "tb").glob("hparams*")))).Reload()
        assert "final/loss_D" in hparams.Tags()["scalars"]
        from tensorboard.plugins.hparams import plugin_data_pb2

        start = hparams.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hp = plugin_data_pb2.HParamsPluginData.FromString(start).session_start_info.hparams
        assert hp["objective.lr"].number_value == 2e-4 and hp["train.batch_size"].number_value == FAST.batch_size


def test_torchrun_two_processes_match_one(tmp_path: Path) -> None:
    """The same global batch on 1 and 2 gloo processes gives the same losses and weights (per-sample networks:
    BatchNorm statistics would differ by construction, see the README)."""
    root = write_animal(tmp_path)
    args = ["train", "dcgan.28", "--steps", "6", "--batch-size", "16", "--log-every", "1", "--sample-every", "0",
            "--no-progress", "--set", "generator_kwargs={'ngf': 8, 'norm': 'identity'}",
            "--set", "discriminator_kwargs={'ndf': 8, 'norm': 'identity'}", "--data-set", f"root={str(root)!r}"]
    env = {**os.environ, "GANZOO_LOAD_PLUGINS": "dcgan", "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "ganzoo_core.cli", *args, "--out", str(tmp_path / "one")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "-m", "ganzoo_core.cli",
                          *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    rows = [[json.loads(ln) for ln in (tmp_path / d / "metrics.jsonl").read_text().splitlines()] for d in ("one", "two")]
    assert len(rows[0]) == len(rows[1]) == 6
    for a, b in zip(*rows):
        assert a["loss_D"] == pytest.approx(b["loss_D"], abs=1e-5) and a["loss_G"] == pytest.approx(b["loss_G"], abs=1e-5)
    w1, w2 = (gz.load(tmp_path / d / "checkpoint.safetensors").state_dict() for d in ("one", "two"))
    for key in w1:
        assert torch.allclose(w1[key], w2[key], atol=1e-5), key
    assert train_meta(tmp_path / "two" / "checkpoint.safetensors")["world"] == 2


def test_a_phase_that_runs_every_n_steps_follows_its_schedule_without_warnings(data, tmp_path: Path) -> None:
    """The G phase of a critic-style objective (every 3 steps) has not stepped at step 1; its schedule still counts
    engine steps, and PyTorch's misordered-call warning is not shown to the user."""
    objective = tiny_dcgan()
    d_phase, g_phase = objective.phases
    objective.phases = (d_phase, attrs.evolve(g_phase, every=3))
    cfg = attrs.evolve(FAST, steps=8, schedule=ScheduleCfg(kind="linear"))
    trainer = Trainer(objective, data, tmp_path, cfg)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.run()
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    # linear over 8 steps: full LR for 4, then 0.75, 0.5, 0.25; after the 8th schedule step both are at 0
    assert [opt.param_groups[0]["lr"] for opt in trainer.optimizers.values()] == pytest.approx([0.0, 0.0], abs=1e-12)
    assert [s.last_epoch for s in trainer.schedulers.values()] == [8, 8]  # one step per engine step, G's too


@pytest.mark.parametrize("skip", [True, False])
def test_a_phase_skips_weight_gradients_of_networks_no_later_phase_updates(skip: bool) -> None:
    """The G phase backpropagates through D without D's weight gradients; the D phase keeps G's graph, because
    the G phase reuses its fake batch."""
    from ganzoo_core.training import make_optimizers, run_phase

    torch.manual_seed(0)
    objective = gz.create_objective("dcgan.28")
    optimizers = make_optimizers(objective)
    batch, ctx = objective.example_batch(4), {}
    d_phase, g_phase = objective.phases
    run_phase(objective, d_phase, optimizers["D"], batch, ctx, step=1, skip_frozen_grads=skip)
    assert ctx["fake"].requires_grad, "the D phase's fake batch lost its graph to G"
    objective.networks["D"].zero_grad(set_to_none=True)
    g_before = [p.detach().clone() for p in objective.networks["G"].parameters()]
    run_phase(objective, g_phase, optimizers["G"], batch, ctx, step=1, skip_frozen_grads=skip)
    d_grads = [p.grad for p in objective.networks["D"].parameters()]
    assert all(g is None for g in d_grads) if skip else all(g is not None for g in d_grads)
    assert all(p.requires_grad for p in objective.parameters()), "parameters stayed frozen after the phase"
    assert any(not torch.equal(a, p) for a, p in zip(g_before, objective.networks["G"].parameters())), "G not updated"


# -- a run folder belongs to one run ------------------------------------------------------------------------------


def test_a_folder_holding_a_run_needs_resume_or_overwrite(data, tmp_path: Path) -> None:
    first = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2))
    before = first.checkpoint.read_bytes()
    with pytest.raises(gz.RunFolderError, match=r"already holds a run \(a checkpoint at step 2\).*--resume.*--overwrite"):
        train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=3))
    assert first.checkpoint.read_bytes() == before  # nothing replaced, nothing appended
    rows = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]
    (tmp_path / "notes.txt").write_text("mine")
    again = train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=3, overwrite=True))
    assert [r["step"] for r in again.history] == [1, 2, 3]
    assert [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # overwrite deletes the run's files only
    with pytest.raises(gz.GanzooError, match="exclude each other"):
        attrs.evolve(FAST, resume=True, overwrite=True)


def test_a_locked_folder_is_refused(data, tmp_path: Path) -> None:
    import fcntl

    with open(tmp_path / ".ganzoo.lock", "w") as handle:  # another process's lock (flock is per open file)
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        handle.write("4242")
        handle.flush()
        with pytest.raises(gz.RunFolderError, match=r"in use by another ganzoo process \(pid 4242\)"):
            train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=1))
    assert not (tmp_path / "metrics.jsonl").exists()
    assert train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=1)).step == 1  # released: trains


def test_resume_refuses_changed_settings_and_applies_accepted_ones(data, tmp_path: Path) -> None:
    train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2))
    saved = tmp_path / "checkpoint.safetensors"
    before = saved.read_bytes()
    with pytest.raises(gz.RunFolderError) as err:
        train(tiny_dcgan(lr=1e-3), data, tmp_path, attrs.evolve(FAST, steps=4, batch_size=4, resume=True))
    message = str(err.value)
    assert "lr: 0.0002 -> 0.001" in message and "batch_size: 8 -> 4" in message
    assert "--accept-changes batch_size,lr" in message
    assert saved.read_bytes() == before
    with pytest.raises(gz.RunFolderError, match="--accept-changes batch_size"):  # lr accepted, batch_size not
        train(tiny_dcgan(lr=1e-3), data, tmp_path, attrs.evolve(FAST, steps=4, batch_size=4, resume=True,
                                                                 accept_changes=("lr",)))
    seen: list[float] = []
    trainer = Trainer(tiny_dcgan(lr=1e-3), data, tmp_path,
                      attrs.evolve(FAST, steps=4, batch_size=4, resume=True, accept_changes=("lr", "batch_size")),
                      on_log=lambda row: seen.append(trainer.optimizers["D"].param_groups[0]["lr"]))
    result = trainer.run()
    assert result.step == 4 and seen == [1e-3, 1e-3]  # the new learning rate really drives the optimizer
    meta = train_meta(saved)
    assert meta["train_cfg"]["batch_size"] == 4
    assert meta["changes"] == [{"step": 2, "changed": {"batch_size": [8, 4], "lr": [2e-4, 1e-3]}}]
    assert gz.load(saved).cfg.lr == 1e-3  # what the checkpoint records is what was used
    # the same settings again resume without complaint, and the change history is kept
    train(tiny_dcgan(lr=1e-3), data, tmp_path, attrs.evolve(FAST, steps=5, batch_size=4, resume=True))
    assert train_meta(saved)["changes"] == meta["changes"]


def test_resume_keeps_the_optimizer_moments_when_the_learning_rate_changes(data, tmp_path: Path) -> None:
    train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2))
    objective = tiny_dcgan(lr=1e-3)
    trainer = Trainer(objective, data, tmp_path, attrs.evolve(FAST, steps=2, resume=True, accept_changes=("lr",)))
    trainer._claim_folder()
    try:
        assert trainer._resume() == 2
    finally:
        trainer._release_folder()
    state = trainer.optimizers["G"].state_dict()
    assert state["param_groups"][0]["lr"] == 1e-3
    assert all(s["step"] == 2 for s in state["state"].values())  # Adam's step count and moments restored


def test_nan_at_the_first_steps_says_no_checkpoint_exists(data, tmp_path: Path) -> None:
    gz.register_objective("nantest.obj", cfg=NanCfg())(NanObjective)
    try:
        with pytest.raises(gz.NonFiniteLossError) as err:
            train(gz.create_objective("nantest.obj"), data, tmp_path, FAST)
        assert "no checkpoint had been written yet" in str(err.value) and "was kept" not in str(err.value)
    finally:
        from ganzoo_core._plugins import get_host

        get_host().registry.remove_plugin("test_training")


def test_a_diverging_run_is_reported_and_an_empty_dataset_refused(data, tmp_path: Path) -> None:
    with pytest.warns(RuntimeWarning, match=r"losses above 1e\+06 at step \d+ .*lower the learning rate"):
        train(tiny_dcgan(lr=1e10), data, tmp_path / "hot", attrs.evolve(FAST, steps=6))
    with pytest.raises(gz.GanzooError, match=r"dataset is empty \(0 items\)"):
        train(tiny_dcgan(), torch.utils.data.Subset(data, []), tmp_path / "empty", FAST)


def test_an_empty_batch_is_refused_before_it_becomes_nan() -> None:
    objective = tiny_dcgan()
    phase = objective.phases[0]
    optimizer = torch.optim.Adam(objective.networks["D"].parameters())
    with pytest.raises(gz.GanzooError, match=r"empty batch \(0 items\) at step 7"):
        from ganzoo_core.training import run_phase

        run_phase(objective, phase, optimizer, {"image": torch.empty(0, 1, 28, 28)}, {}, 7)


def test_a_refused_run_releases_the_folder_lock_at_once(data, tmp_path: Path) -> None:
    import fcntl

    train(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=1))
    trainer = Trainer(tiny_dcgan(), data, tmp_path, attrs.evolve(FAST, steps=2))
    with pytest.raises(gz.RunFolderError, match="already holds a run"):
        trainer.run()
    with open(tmp_path / ".ganzoo.lock") as handle:  # the trainer object is still alive, its lock must not be
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_dataset_for_fits_the_data_to_the_objective_from_python(tmp_path: Path) -> None:
    """``dataset_for`` is what ``ganzoo train`` builds: channels and image size from the objective's networks."""
    from ganzoo_core.training import dataset_for

    root = str(write_animal(tmp_path))
    rgb32 = gz.create_objective("dcgan.32", **TINY)
    assert rgb32.image_shape == (3, 32, 32) and rgb32.cfg.dataset == "animal_mnist.train"
    data = dataset_for(rgb32, root=root)  # the objective's own dataset, fitted
    assert tuple(data[0]["image"].shape) == (3, 32, 32)
    assert tuple(dataset_for(tiny_dcgan(), "animal_mnist.test", root=root)[0]["image"].shape) == (1, 28, 28)
    assert len(dataset_for(rgb32, "animal_mnist", root=root, limit=7)) == 7  # other options pass through
    with pytest.raises(gz.GanzooError, match=r"channels=1 does not fit 'dcgan.32', whose networks take channels 3"):
        dataset_for(rgb32, root=root, channels=1)
    with pytest.raises(gz.GanzooError, match="image_size=64 does not fit 'dcgan.32'"):
        dataset_for(rgb32, root=root, image_size=64)
    with pytest.raises(gz.GanzooError, match=r"objective 'dcgan.32' names no default dataset; pass --data NAME"):
        dataset_for(gz.create_objective("dcgan.32", dataset="", **TINY), root=root)
    with pytest.raises(gz.UnknownNameError, match="animal_mnistt"):
        dataset_for(rgb32, "animal_mnistt")
    trained = train(rgb32, data, tmp_path / "run", attrs.evolve(FAST, steps=1))  # and it trains as it comes
    assert trained.step == 1


def test_fused_adam_policy_trains_as_plain_adam_and_resumes_older_runs(data, tmp_path: Path) -> None:
    """``Policy(fused_adam=True)`` (``ganzoo train --fused-adam``): FusedAdam in every phase, recorded; the same
    weights as plain Adam up to rounding; a run saved before the field existed resumes without a changed setting."""
    from ganzoo_core.optim import FusedAdam

    fused = Policy(channels_last=True, fused_adam=True)
    trainer = Trainer(tiny_dcgan(), data, tmp_path / "fused", attrs.evolve(FAST, policy=fused))
    assert all(isinstance(o, FusedAdam) for o in trainer.optimizers.values())
    result = trainer.run()
    plain = train(tiny_dcgan(), data, tmp_path / "plain", attrs.evolve(FAST, policy=Policy(channels_last=True)))
    meta = train_meta(result.checkpoint)
    assert meta["policy"]["fused_adam"] is True and meta["policy_name"] == "fp32+channels_last+fused_adam"
    for a, b in zip(gz.load(result.checkpoint).state_dict().values(), gz.load(plain.checkpoint).state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # an older run: its recorded policy has no fused_adam; resuming it with the default policy changes nothing
    from ganzoo_core import training as training_mod

    older = tmp_path / "older"
    train(tiny_dcgan(), data, older, attrs.evolve(FAST, steps=2))
    info = training_mod.read_info(older / "checkpoint.safetensors")
    assert info is not None
    with safe_open(str(older / "checkpoint.safetensors"), framework="pt") as handle:
        stored = dict(handle.metadata())
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    train_info = json.loads(stored["ganzoo.train"])
    del train_info["policy"]["fused_adam"]
    del train_info["train_cfg"]["policy"]["fused_adam"]
    stored["ganzoo.train"] = json.dumps(train_info)
    from safetensors.torch import save_file

    save_file(tensors, str(older / "checkpoint.safetensors"), metadata=stored)
    resumed = train(tiny_dcgan(), data, older, attrs.evolve(FAST, steps=3, resume=True))
    assert resumed.step == 3 and train_meta(resumed.checkpoint)["changes"] == []
