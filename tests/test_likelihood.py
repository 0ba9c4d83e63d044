"""Likelihood through the probability-flow ODE, checked against closed forms.

* The change of variables is exact: on a Gaussian and a Gaussian mixture, the integrated divergence plus the exact
  log p(x(sigma_max); sigma_max) equals the closed-form log p(x; sigma_min) to the solver tolerance, and the full
  estimate (terminal N(0, sigma_max^2 I)) matches it when sigma_max dwarfs the data.
* Hutchinson's estimator is unbiased: z-score of the mean of seeded single-probe estimates against the closed form.
* Bits/dim: the dequantized bound against the discrete probability of a bin from the normal CDF.
* Bad input: one-line SamplerzooErrors, and exit code 1 from the CLI.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from samplerzoo import (
    CountingDenoiser,
    Gaussian,
    GaussianMixture,
    SamplerzooError,
    SeededNoise,
    UnknownNameError,
    finite_dataset,
)
from samplerzoo.cli import main
from samplerzoo.data import digits
from samplerzoo.likelihood import (
    BIN_WIDTH,
    PROBES,
    bits_per_dim,
    dequantize,
    image_bits_per_dim,
    log_likelihood,
    unconditional,
)
from samplerzoo.samplers.reference import solve_ode

SIGMA_MIN = 0.002
TOL = 1e-7
"""Solver rtol = atol for the exactness checks."""
F64 = torch.float64


def gaussian(sigma_max: float = 80.0) -> Gaussian:
    return Gaussian(torch.tensor([0.5, -0.3, 0.2, 1.0], dtype=F64), 0.6, sigma_max=sigma_max)


def mixture(sigma_max: float = 80.0) -> GaussianMixture:
    means = torch.tensor([[1.0, 0.5, 0.0], [-1.0, 0.2, 0.4], [0.3, -1.2, -0.5]], dtype=F64)
    return GaussianMixture(means, torch.tensor([0.3, 0.1, 0.05], dtype=F64), torch.tensor([0.5, 0.3, 0.2]),
                           sigma_max=sigma_max)


def noisy_data(model: GaussianMixture, n: int, seed: int) -> Tensor:
    """Draws from p(x; sigma_min): data plus N(0, sigma_min^2 I)."""
    generator = torch.Generator().manual_seed(seed)
    x = model.sample(n, generator)
    return x + SIGMA_MIN * torch.randn(x.shape, generator=generator, dtype=x.dtype)


def exact_log_prob(model: GaussianMixture, x: Tensor, sigma: float) -> Tensor:
    return model.log_prob(x, torch.tensor(sigma, dtype=F64))


@pytest.mark.parametrize("make", [gaussian, mixture], ids=["gaussian", "mixture"])
def test_change_of_variables_is_exact(make: Callable[..., GaussianMixture]) -> None:
    model = make()
    x = noisy_data(model, 6, seed=1)
    result = log_likelihood(model, x, sigma_min=SIGMA_MIN, rtol=TOL, atol=TOL)
    transported = result.divergence + exact_log_prob(model, result.latent, model.sigma_max)
    error = (transported - exact_log_prob(model, x, SIGMA_MIN)).abs().max()
    print(f"{make.__name__}: change of variables off by {error:.1e} nats in {result.nfe} calls")
    assert error < 1e-5
    latent = solve_ode(model, x, SIGMA_MIN, model.sigma_max, TOL, TOL).x
    assert torch.allclose(result.latent, latent, rtol=1e-5, atol=1e-5)  # the x part is the PF-ODE itself


@pytest.mark.parametrize("make", [gaussian, mixture], ids=["gaussian", "mixture"])
def test_log_likelihood_matches_the_closed_form(make: Callable[..., GaussianMixture]) -> None:
    # N(0, sigma_max^2 I) for p(.; sigma_max) is off by O(|mean| |x_T| / sigma_max^2) ~ 1e-4 nats at sigma_max 1e4.
    model = make(sigma_max=1e4)
    x = noisy_data(model, 6, seed=2)
    result = log_likelihood(model, x, sigma_min=SIGMA_MIN, rtol=1e-6, atol=1e-6)
    assert torch.allclose(result.log_p, exact_log_prob(model, x, SIGMA_MIN), rtol=0, atol=1e-3)
    assert torch.allclose(result.log_p, result.prior + result.divergence)


def test_latent_follows_the_gaussian_closed_form_and_nfe_counts_denoiser_calls() -> None:
    model = gaussian()
    counted = CountingDenoiser(model)
    x = noisy_data(model, 3, seed=3)
    result = log_likelihood(counted, x, sigma_min=SIGMA_MIN, rtol=TOL, atol=TOL)
    assert torch.allclose(result.latent, model.ode_solution(x, SIGMA_MIN, model.sigma_max), rtol=1e-6, atol=1e-6)
    assert result.nfe == counted.calls and (result.nfe - 1) % 6 == 0  # dopri5: 1 + 6 per attempted step (FSAL)


def test_rademacher_probes_are_exact_for_a_diagonal_jacobian() -> None:
    # The isotropic Gaussian's dD/dx is a multiple of I, and v^T c I v = c d for every v in {-1, 1}^d.
    model = gaussian()
    x = noisy_data(model, 4, seed=4)
    exact = log_likelihood(model, x, sigma_min=SIGMA_MIN, rtol=1e-6, atol=1e-6)
    estimate = log_likelihood(model, x, sigma_min=SIGMA_MIN, divergence="hutchinson", rtol=1e-6, atol=1e-6)
    assert torch.allclose(estimate.log_p, exact.log_p, rtol=0, atol=1e-9)


@pytest.mark.parametrize("probe", PROBES)
def test_hutchinson_is_unbiased(probe: str) -> None:
    # 256 single-probe estimates of one point (one seed each): the mean is within 4 standard errors of the
    # closed form, and the spread is real (the mixture's Jacobian is not diagonal).
    model, n = mixture(sigma_max=1e4), 256
    x = torch.tensor([[0.2, -0.3, 0.1]], dtype=F64)
    noise = SeededNoise(range(n), (3,), dtype=F64)
    estimate = log_likelihood(model, x.expand(n, 3), sigma_min=SIGMA_MIN, divergence="hutchinson",
                              probe=probe, noise=noise, rtol=1e-5, atol=1e-5).log_p  # type: ignore[arg-type]
    standard_error = estimate.std() / math.sqrt(n)
    z = (estimate.mean() - exact_log_prob(model, x, SIGMA_MIN)) / standard_error
    print(f"{probe}: mean {estimate.mean():.3f} +- {standard_error:.3f}, z = {float(z):.2f}")
    assert abs(float(z)) < 4 and standard_error > 0.05


def test_hutchinson_estimates_do_not_depend_on_the_batch() -> None:
    model, seeds = mixture(), [5, 6]
    x = noisy_data(model, 2, seed=5)
    together = log_likelihood(model, x, divergence="hutchinson", probes=2, probe="gaussian", rtol=1e-4, atol=1e-4,
                              noise=SeededNoise(seeds, (3,), dtype=F64)).log_p
    alone = [log_likelihood(model, x[i:i + 1], divergence="hutchinson", probes=2, probe="gaussian", rtol=1e-4,
                            atol=1e-4, noise=SeededNoise(seeds[i:i + 1], (3,), dtype=F64)).log_p for i in range(2)]
    assert torch.allclose(together, torch.cat(alone), rtol=0, atol=1e-9)


def test_dequantizing_8_bit_pixels_gives_their_bins() -> None:
    # Centres (2k + 1)/256 - 1 give y = 2 (k + U)/256 - 1 with U in [0, 1): y lies in pixel k's bin.
    pixels = torch.arange(256, dtype=F64).reshape(4, 1, 8, 8)
    y = dequantize((2 * pixels + 1) / 256 - 1, SeededNoise(range(4), (1, 8, 8), dtype=F64))
    assert torch.equal(torch.floor((y + 1) * 128), pixels)
    assert (y - (2 * pixels + 1) / 256 + 1).abs().mean() > BIN_WIDTH / 5  # spread over the bin, not at its centre


def test_bits_per_dim_bounds_the_discrete_code_length() -> None:
    # Pixels of a N(mean, s^2 I) density (s = sqrt(std^2 + sigma_min^2)): the probability of a bin is a difference
    # of normal CDFs. E_U[log p(c + w (U - 1/2))] = log p(c) - w^2 / (24 s^2) per dimension, so the expected bpd
    # is known exactly; it bounds -log2 P(bin) / d from above, by less than the Jensen term w^2 / (24 s^2 ln 2).
    model = Gaussian(torch.tensor([[[0.1, -0.2], [0.3, 0.0]]], dtype=F64), 0.01, sigma_min=SIGMA_MIN)
    s, d, n = math.sqrt(0.01**2 + SIGMA_MIN**2), 4, 4000
    centre = torch.tensor([[[0.1, -0.19], [0.31, 0.0]]], dtype=F64)
    normal = torch.distributions.Normal(model.mean, s)
    discrete = -(normal.cdf(centre + BIN_WIDTH / 2) - normal.cdf(centre - BIN_WIDTH / 2)).log2().sum() / d
    y = dequantize(centre.expand(n, 1, 2, 2), SeededNoise(range(n), (1, 2, 2), dtype=F64))
    bpd = bits_per_dim(exact_log_prob(model, y, SIGMA_MIN), d)
    expected = bits_per_dim(exact_log_prob(model, centre[None], SIGMA_MIN) - d * BIN_WIDTH**2 / (24 * s**2), d)
    assert abs(float(bpd.mean() - expected)) < 4 * float(bpd.std()) / math.sqrt(n)
    assert 0 < float(expected) - float(discrete) < BIN_WIDTH**2 / (24 * s**2 * math.log(2))


def test_image_bits_per_dim_matches_the_closed_form_and_ignores_the_batch() -> None:
    # Mean 0: N(0, sigma_max^2 I) is then off p(.; sigma_max) by ~ d std^2 / sigma_max^2 = 6e-5 nats.
    model = Gaussian(torch.zeros(1, 2, 2, dtype=F64), 0.3)
    images = torch.randint(0, 17, (5, 1, 2, 2), generator=torch.Generator().manual_seed(6)).to(F64) / 8 - 1
    seeds = range(10, 15)
    result = image_bits_per_dim(model, images, seeds, batch=2, sigma_min=SIGMA_MIN, rtol=1e-6, atol=1e-6)
    y = dequantize(images, SeededNoise(seeds, (1, 2, 2), dtype=F64))
    assert torch.allclose(result.bpd, bits_per_dim(exact_log_prob(model, y, SIGMA_MIN), 4), rtol=0, atol=1e-4)
    assert result.batches == 3
    one_batch = image_bits_per_dim(model, images, seeds, batch=5, sigma_min=SIGMA_MIN, rtol=1e-6, atol=1e-6)
    assert torch.allclose(one_batch.bpd, result.bpd, rtol=0, atol=1e-9)


def test_progress_hears_the_images_done_in_order_up_to_all_of_them() -> None:
    """What `zoo nll`'s bar shows: a non-decreasing count of images, fractional within a batch, ending at all."""
    model = Gaussian(torch.zeros(1, 2, 2, dtype=F64), 0.3)
    images = torch.randint(0, 17, (5, 1, 2, 2), generator=torch.Generator().manual_seed(6)).to(F64) / 8 - 1
    heard: list[float] = []
    image_bits_per_dim(model, images, range(5), batch=2, sigma_min=SIGMA_MIN, progress=heard.append)
    assert heard == sorted(heard) and heard[-1] == pytest.approx(5)
    assert any(0 < done < 2 for done in heard), "no fraction within the first batch"
    assert {2.0, 4.0} <= {round(done, 9) for done in heard}, "a finished batch was not reported"


class NullLabelled:
    """A class-conditional mixture (one class per component) whose null label K gives the whole mixture."""

    def __init__(self, model: GaussianMixture, null_label: int | None) -> None:
        self.model, self.num_classes, self.null_label = model, len(model.weights), null_label
        self.sigma_min, self.sigma_max, self.sample_shape = model.sigma_min, model.sigma_max, model.sample_shape

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor) -> Tensor:
        assert bool((class_labels == self.num_classes).all()), "not the null label"
        return self.model(x, sigma)


def test_a_class_conditional_model_is_measured_through_its_null_label() -> None:
    model = mixture()
    x = noisy_data(model, 2, seed=7)
    conditional = unconditional(NullLabelled(model, null_label=3), len(x))  # type: ignore[arg-type]
    assert torch.allclose(log_likelihood(conditional, x, rtol=1e-4, atol=1e-4).log_p,
                          log_likelihood(model, x, rtol=1e-4, atol=1e-4).log_p)
    with pytest.raises(SamplerzooError, match="null label"):
        unconditional(NullLabelled(model, null_label=None), len(x))  # type: ignore[arg-type]


@pytest.mark.parametrize(("options", "message"), [
    ({"sigma_min": 1e-4}, r"sigma range \[0.0001, 80\] is outside the model's; accepted: within \[0.002, 80\]"),
    ({"sigma_max": 100.0}, r"sigma range \[0.002, 100\] is outside the model's; accepted: within \[0.002, 80\]"),
    ({"sigma_min": 1.0, "sigma_max": 0.5}, r"^sigma_min 1 must be below sigma_max 0.5$"),
])
def test_a_sigma_range_outside_the_model_is_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(SamplerzooError, match=message):
        log_likelihood(gaussian(), noisy_data(gaussian(), 1, seed=0), **options)  # type: ignore[arg-type]


def test_bad_data_and_names_are_refused() -> None:
    model = Gaussian(torch.zeros(1, 2, 2, dtype=F64), 0.5)
    images = torch.zeros(3, 1, 2, 2, dtype=F64)
    with pytest.raises(SamplerzooError, match=r"shape \(3, 4\) does not fit the model; accepted: \(batch, 1, 2, 2\)"):
        log_likelihood(model, images.reshape(3, 4))
    with pytest.raises(SamplerzooError, match=r"span \[0, 2\]; accepted: data scaled to \[-1, 1\]"):
        image_bits_per_dim(model, images + 2 * (torch.arange(3) == 1).reshape(3, 1, 1, 1), range(3))
    with pytest.raises(UnknownNameError, match="unknown divergence 'hutchinsn'; did you mean hutchinson"):
        log_likelihood(model, images, divergence="hutchinsn")  # type: ignore[arg-type]
    with pytest.raises(UnknownNameError, match="unknown probe 'normal'"):
        log_likelihood(model, images, divergence="hutchinson", probe="normal")  # type: ignore[arg-type]


@pytest.mark.parametrize(("argv", "message"), [
    (["--split", "validation"], "error: unknown split 'validation'; known: test, train"),
    (["--sigma-min", "0.001"], "error: sigma range [0.001, 80] is outside the model's; accepted: within [0.002, 80]"),
    (["--samples", "300"], "error: --samples 300: the test split has 297 images; accepted: 1..297"),
])
def test_cli_errors_are_one_line_and_exit_1(argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "nll", "--checkpoint", "digits-ideal", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1 and err.startswith(message), err


def test_cli_bits_per_dim_of_training_images_under_the_ideal_denoiser_match_the_closed_form(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # digits-ideal is the finite training set, whose p(y; sigma_min) is closed form: the float32 model with the exact
    # divergence at rtol = atol = 1e-4 is within 0.02 bits/dim of it (about 0.9 nats per image).
    monkeypatch.setattr(sys, "argv", ["zoo", "nll", "--checkpoint", "digits-ideal", "--split", "train", "--samples",
                                      "1", "--seed", "3", "--divergence", "exact", "--rtol", "1e-4", "--atol", "1e-4"])
    main()
    out = capsys.readouterr().out
    assert "digits-ideal, train split, 1 images:" in out and "denoiser calls in 1 batch(es)" in out
    images = digits("train")[0][:1]
    y = dequantize(images, SeededNoise([3], images.shape[1:])).to(F64)
    closed_form = bits_per_dim(finite_dataset(digits("train")[0].to(F64)).log_prob(y, torch.tensor(SIGMA_MIN)), 64)
    assert abs(float(out.split("images: ")[1].split()[0]) - float(closed_form)) < 0.02
