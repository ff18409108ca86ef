"""The official DCGAN iteration of ``ganzoo bench models --baseline official`` (``ganzoo_dcgan.baseline``): the same
networks as ``dcgan.64`` (parameter counts, names, the function they compute), and one iteration that trains."""

from __future__ import annotations

import torch
from ganzoo_dcgan import baseline

import ganzoo_core as gz
from ganzoo_core.testing import parameter_count


def _the_baseline() -> gz.Baseline:
    (found,) = baseline.ganzoo_bench_baselines()
    return found


def test_the_hook_gives_one_baseline_for_the_registered_objective() -> None:
    b = _the_baseline()
    assert b.name == "dcgan.official" and gz.is_objective(b.objective) and b.batch_size == 64
    assert "@" in b.source.split()[0] and b.generate is not None
    assert b in gz.bench.list_baselines()  # found through the plugin host


def test_networks_have_the_objective_networks_parameter_counts() -> None:
    b = _the_baseline()
    ours = gz.create_objective(b.objective, **b.overrides).networks
    official = baseline.networks()
    assert set(official) == set(ours)
    for name, net in official.items():
        assert parameter_count(net) == parameter_count(ours[name]), name
    assert parameter_count(official["G"]) == 3_576_704 and parameter_count(official["D"]) == 2_765_568  # models.md §1.1


def test_official_networks_compute_what_dcgan_64_computes() -> None:
    """The same names and shapes (a strict load) and the same outputs: D's probability is the sigmoid of ganzoo's
    logit."""
    official = {k: v.eval() for k, v in baseline.networks(seed=3).items()}
    g, d = gz.create_generator("dcgan.64").eval(), gz.create_discriminator("dcgan.64").eval()
    g.load_state_dict(official["G"].state_dict())
    d.load_state_dict(official["D"].state_dict())
    z = torch.randn(3, 100, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(g(z), official["G"](z), rtol=1e-4, atol=1e-5)
        x = torch.rand(3, 3, 64, 64) * 2 - 1
        torch.testing.assert_close(torch.sigmoid(d(x)), official["D"](x), rtol=1e-4, atol=1e-5)


def test_one_iteration_steps_both_networks() -> None:
    nets = baseline.networks()
    before = {k: [p.detach().clone() for p in net.parameters()] for k, net in nets.items()}
    err_d, err_g = baseline.make_iteration(nets, batch_size=2)()
    assert torch.isfinite(err_d) and torch.isfinite(err_g)
    for name, net in nets.items():
        moved = [not torch.equal(a, p) for a, p in zip(before[name], net.parameters())]
        assert all(moved), f"{name}: {moved.count(False)} of {len(moved)} parameter tensors did not change"


def test_generate_is_an_eval_forward_of_the_official_generator() -> None:
    out = baseline.generate(2, "cpu", 0)()
    assert out.shape == (2, 3, 64, 64) and not out.requires_grad
    torch.testing.assert_close(out, baseline.generate(2, "cpu", 0)())  # eval mode: no batch statistics, no noise
