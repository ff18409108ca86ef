"""``ganzoo train``: its options (``add_train_arguments``, which ``ganzoo_core.runconfig`` also reads to check a run
config's keys) and the command itself."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ganzoo_core.argtypes import device as device_arg
from ganzoo_core.argtypes import int_at_least, positive_float
from ganzoo_core.argtypes import seed as seed_arg
from ganzoo_core.errors import GanzooError
from ganzoo_core.overrides import parse_overrides


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """Every option of ``ganzoo train`` (their dests are the keys of a run config file's top level)."""
    p.add_argument("objective", nargs="?",
                   help="objective name (see 'ganzoo list --kind objective'); optional when --config names it")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="a run config (TOML): these options by name, [set] and [data_set] tables; flags override it")
    p.add_argument("--data", help="dataset name (default: the objective's own)")
    p.add_argument("--steps", type=int_at_least(1), default=2000)
    p.add_argument("--max-minutes", type=positive_float, metavar="M",
                   help="also stop after M minutes of training (checkpointed; --resume continues to --steps)")
    p.add_argument("--batch-size", type=int_at_least(1), default=64)
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--out", type=Path, default=Path("runs/latest"), help="output folder")
    p.add_argument("--sample-every", type=int_at_least(0), default=500, help="0: only at the end")
    p.add_argument("--checkpoint-every", type=int_at_least(0), default=1000, help="0: only at the end")
    p.add_argument("--log-every", type=int_at_least(1), default=50)
    p.add_argument("--workers", type=int_at_least(0), default=0, help="DataLoader worker processes")
    p.add_argument("--sync-bn", action="store_true",
                   help="under torchrun: BatchNorm statistics over the global batch (torch's SyncBatchNorm on CUDA; "
                        "on the CPU/gloo, where torch's needs a GPU, ganzoo's all-reduce version); one process: "
                        "trains as usual")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="objective config override")
    p.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE", help="dataset config override")
    g = p.add_argument_group("precision and speed")
    g.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="bf16: autocast on CPU or CUDA; fp16: autocast with a grad scaler, CUDA only")
    g.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    g.add_argument("--compile", action="store_true", help="torch.compile every network")
    g.add_argument("--fused-adam", action="store_true",
                   help="Adam's fused single-kernel step (the same update; faster on CPU, channels_last too)")
    g = p.add_argument_group("schedule and averaging")
    g.add_argument("--lr-schedule", choices=("constant", "linear", "step"), default="constant")
    g.add_argument("--decay-start", type=int, help="linear: first step of the decay to 0 (default: half way)")
    g.add_argument("--step-size", type=int, default=1000, help="step: steps between LR multiplications")
    g.add_argument("--gamma", type=float, default=0.5, help="step: the LR factor")
    g.add_argument("--ema", type=float, help="keep an EMA of the generator with this decay (e.g. 0.999)")
    g = p.add_argument_group("runs")
    g.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.safetensors if it exists")
    g.add_argument("--overwrite", action="store_true",
                   help="OUT holds a run: delete its checkpoint, metrics and samples and start again")
    g.add_argument("--accept-changes", metavar="KEY[,KEY]",
                   help="with --resume: settings allowed to differ from the saved run's (e.g. lr,batch_size; 'all')")
    g.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.set_defaults(config_set={}, config_data_set={})  # a --config file's [set] and [data_set] tables


def train_cfg_from_args(args: argparse.Namespace) -> Any:
    """The ``TrainCfg`` of parsed ``ganzoo train`` options."""
    from ganzoo_core.policy import Policy
    from ganzoo_core.schedules import ScheduleCfg
    from ganzoo_core.training import TrainCfg

    try:
        policy = Policy(precision=args.precision, channels_last=args.channels_last, compile=args.compile,
                        fused_adam=args.fused_adam)
        schedule = ScheduleCfg(kind=args.lr_schedule, decay_start=args.decay_start, step_size=args.step_size,
                               gamma=args.gamma)
    except ValueError as err:
        raise GanzooError(str(err)) from err
    accept = tuple(k.strip() for k in (args.accept_changes or "").split(",") if k.strip())
    if accept and not args.resume:
        raise GanzooError("--accept-changes applies to --resume only")
    return TrainCfg(steps=args.steps, max_minutes=args.max_minutes, batch_size=args.batch_size, seed=args.seed,
                    device=args.device, sample_every=args.sample_every, checkpoint_every=args.checkpoint_every,
                    log_every=args.log_every, sync_bn=args.sync_bn,
                    num_workers=args.workers, policy=policy, schedule=schedule, ema=args.ema, resume=args.resume,
                    overwrite=args.overwrite, accept_changes=accept, progress=not args.no_progress)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from ganzoo_core._api import create
    from ganzoo_core.text import match_data_encoder
    from ganzoo_core.training import dataset_for, train

    if not args.objective:
        raise GanzooError("train needs an objective: 'ganzoo train NAME', or objective = \"NAME\" in the --config file")
    cfg = train_cfg_from_args(args)
    torch.manual_seed(args.seed)
    overrides = {**args.config_set, **parse_overrides(args.set)}  # a --set flag wins over the file's [set]
    data_overrides = {**args.config_data_set, **parse_overrides(args.data_set, option="--data-set")}
    objective = create("objective", args.objective, **overrides)
    match_data_encoder(objective, args.data, data_overrides, overrides)  # record the encoder the data embeds with
    data_name = args.data or getattr(objective.cfg, "dataset", None)
    dataset = dataset_for(objective, args.data, **data_overrides)
    main_process = os.environ.get("RANK", "0") == "0"
    if main_process:
        print(f"training {args.objective} on {data_name} ({len(dataset)} images) for {cfg.steps} steps, "
              f"policy {cfg.policy.name} → {args.out}")
    result = train(objective, dataset, args.out, cfg)
    if result.interrupted:
        if main_process:
            print(f"interrupted at step {result.step}; checkpoint: {result.checkpoint}; continue with the same "
                  "command plus --resume", file=sys.stderr)
        return 130
    if main_process:
        curve = result.out_dir / "loss_curve.png"
        print(f"checkpoint: {result.checkpoint}\nsamples:    {result.out_dir / 'samples.png'}\n"
              + (f"loss curve: {curve}\n" if curve.is_file() else "")
              + f"report:     ganzoo report {result.out_dir}")
    return 0


__all__ = ["add_train_arguments", "cmd_train", "train_cfg_from_args"]
