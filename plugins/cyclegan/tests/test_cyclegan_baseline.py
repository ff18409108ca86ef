"""The official CycleGAN iteration of ``ganzoo bench models --baseline official`` (``ganzoo_cyclegan.baseline``): the
same networks as the objective with the baseline's overrides (parameter counts, names, the function they compute),
the port's image pool, and one iteration that trains every network."""

from __future__ import annotations

import random

import torch
from ganzoo_cyclegan import baseline

import ganzoo_core as gz
from ganzoo_core.testing import parameter_count


def _the_baseline() -> gz.Baseline:
    (found,) = baseline.ganzoo_bench_baselines()
    return found


def test_the_hook_gives_one_baseline_for_the_registered_objective() -> None:
    b = _the_baseline()
    assert b.name == "cyclegan.official" and gz.is_objective(b.objective) and b.batch_size == 1
    assert "@" in b.source.split()[0] and b.generate is not None
    assert b in gz.bench.list_baselines()


def test_networks_have_the_objective_networks_parameter_counts() -> None:
    b = _the_baseline()
    ours = gz.create_objective(b.objective, **b.overrides).networks
    official = baseline.networks()
    assert set(official) == set(ours)
    for name, net in official.items():
        assert parameter_count(net) == parameter_count(ours[name]), name
    assert parameter_count(official["G_A"]) == 11_378_179 and parameter_count(official["D_A"]) == 2_764_737  # models.md §5


def test_official_networks_compute_what_the_registered_ones_compute() -> None:
    """Narrow widths (same code path): the port's names load strictly and give the same outputs."""
    official = {k: v.eval() for k, v in baseline.networks(seed=5, ngf=8, ndf=8, n_blocks=2).items()}
    g = gz.create_generator("cyclegan.resnet_9blocks", ngf=8, n_blocks=2).eval()
    d = gz.create_discriminator("cyclegan.patch70", ndf=8).eval()
    g.load_state_dict(official["G_A"].state_dict())
    d.load_state_dict(official["D_A"].state_dict())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(g(x), official["G_A"](x), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(d(x), official["D_A"](x), rtol=1e-4, atol=1e-5)


def test_image_pool_fills_then_swaps_half_the_time() -> None:
    pool = baseline.ImagePool(3, random.Random(0))
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # filling: the new images come back
    later = torch.arange(100.0, 300.0).view(200, 1, 1, 1)  # every image its own value
    out = pool.query(later)
    swapped = out != later  # an older image came back, and the new one took its place in the pool
    assert 60 < int(swapped.sum()) < 140, int(swapped.sum())  # p = 1/2 per image
    assert bool((out[swapped] < later[swapped]).all())  # what comes back was stored before
    assert {0.0, 1.0, 2.0} & set(out[swapped].tolist())  # the first swap hands out one of the first images
    assert len(pool.images) == 3


def test_one_iteration_steps_every_network() -> None:
    nets = baseline.networks(ngf=8, ndf=8, n_blocks=2)
    before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
    loss_g, loss_d = baseline.make_iteration(nets, batch_size=1, image_size=32)()
    assert torch.isfinite(loss_g) and torch.isfinite(loss_d)
    for name, net in nets.items():
        moved = [not torch.equal(a, p) for a, p in zip(before[name], net.parameters())]
        assert all(moved), f"{name}: {moved.count(False)} of {len(moved)} parameter tensors did not change"
        assert all(p.requires_grad for p in net.parameters()), name  # D unfrozen again after the G step
