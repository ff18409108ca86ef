"""The official pix2pix iteration of ``ganzoo bench models --baseline official`` (``ganzoo_pix2pix_unet.baseline``):
the same networks as ``pix2pix.unet_256`` (parameter counts, the port's names, the function they compute), and one
iteration that trains both networks."""

from __future__ import annotations

import torch
from ganzoo_pix2pix_unet import baseline, convert_junyanz_unet
from torch import nn

import ganzoo_core as gz
from ganzoo_core.testing import parameter_count


def _the_baseline() -> gz.Baseline:
    (found,) = baseline.ganzoo_bench_baselines()
    return found


def test_the_hook_gives_one_baseline_for_the_registered_objective() -> None:
    b = _the_baseline()
    assert b.name == "pix2pix.official" and gz.is_objective(b.objective) and b.batch_size == 1
    assert "@" in b.source.split()[0] and b.generate is not None
    assert b in gz.bench.list_baselines()


def test_networks_have_the_objective_networks_parameter_counts() -> None:
    b = _the_baseline()
    ours = gz.create_objective(b.objective, **b.overrides).networks
    official = baseline.networks()
    assert set(official) == set(ours)
    for name, net in official.items():
        assert parameter_count(net) == parameter_count(ours[name]), name
    assert parameter_count(official["G"]) == 54_413_955 and parameter_count(official["D"]) == 2_768_705  # models.md §4


def test_official_networks_compute_what_the_registered_ones_compute() -> None:
    """Narrow and shallower (same code path, one dropout level): the port's state dict converts and loads strictly
    into the registered U-Net, the PatchGAN's as it is, and both give the same outputs in eval mode."""
    official = {k: v.eval() for k, v in baseline.networks(seed=7, num_downs=6, ngf=8, ndf=8).items()}
    assert sum(isinstance(m, nn.Dropout) for m in official["G"].modules()) == 1
    g = gz.create_generator("pix2pix.unet_64", ngf=8).eval()
    d = gz.create_discriminator("pix2pix.patch70", ndf=8).eval()
    g.load_state_dict(convert_junyanz_unet(official["G"].state_dict()))
    d.load_state_dict(official["D"].state_dict())
    a, b = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(a), official["G"](a.clone()), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d(b, cond=a), official["D"](torch.cat((a, b), 1)), rtol=1e-4, atol=1e-5)


def test_one_iteration_steps_both_networks() -> None:
    nets = baseline.networks(num_downs=5, ngf=8, ndf=8)
    before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
    loss_d, loss_g = baseline.make_iteration(nets, batch_size=1, image_size=32)()
    assert torch.isfinite(loss_d) and torch.isfinite(loss_g)
    for name, net in nets.items():
        moved = [not torch.equal(a, p) for a, p in zip(before[name], net.parameters())]
        assert all(moved), f"{name}: {moved.count(False)} of {len(moved)} parameter tensors did not change"
    assert all(p.requires_grad is False for p in nets["D"].parameters())  # the port leaves D frozen after the G step
