"""Mutation testing of the samplers and the harness: apply one small plausible bug at a time to a copy of the tree and
run the tests that should catch it; a mutant that passes them survives.

The mutations (``MUTANTS``) are the kinds of slip that pass a casual read: a coefficient 5% off, a dropped correction
term or noise draw, sigma where sigma_next (or sigma_down) belongs, a sample lost between sampling and scoring. Each is
applied to a fresh copy of the tree (the working tree's files, or those of ``--rev``), never to the tree itself, and
its tests run there with ``python -m pytest -x -q`` (the copy first on PYTHONPATH, so ``samplerzoo`` is imported from
it): the relevant registry-driven tests selected with ``-k`` by sampler name, then the sampler family's test files.

    python benchmarks/mutants.py --out results/mutants.md              # the current tree and its tests
    python benchmarks/mutants.py --rev main --out /tmp/mutants-main.md  # the same mutants on another revision

A mutant whose text is not in the revision is reported as not applicable. Not CI work: a full run takes an hour or
more on two cores. ``--only ID ...`` runs some, in that order; ``--list`` prints them. The report is rewritten
after every mutant.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REGISTRY_TESTS = ("tests/test_samplers.py", "tests/test_reference_agreement.py")
"""Registry-driven tests, parametrized by sampler name: run with ``-k`` on the mutant's samplers."""


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    kind: str
    samplers: tuple[str, ...] = ()
    files: tuple[str, ...] = ()

    def invocations(self) -> list[list[str]]:
        """pytest argument lists, run in order until one fails."""
        runs = [[*REGISTRY_TESTS, "-k", " or ".join(self.samplers)]] if self.samplers else []
        return runs + ([list(self.files)] if self.files else [])


SDE = ("tests/test_sde.py", "tests/test_sde_laws.py")
DPM = ("tests/test_dpm_solver.py",)
MULTISTEP = ("tests/test_multistep.py", "tests/test_local_order.py")
DIFFUSERS = ("tests/test_diffusers_agreement.py",)
BENCH = ("tests/test_bench.py", "tests/test_distributed.py", "tests/test_report.py", "tests/test_cli.py")
AMED = ("tests/test_amed.py",)
ANCESTRAL = ("euler_ancestral", "ddim", "ddpm", "ddpm_analytic")
CHURNED = ("edm", "euler", "heun", "dpm2")
UNIPC_WEIGHTS = '    rho, b_h = unipc_weights(nodes, h if prediction == "data" else -h, variant)\n'

MUTANTS = [
    # ---------------------------------------------------------------- the ancestral step (steps.py)
    Mutant("ancestral-noise-x1.05", "samplerzoo/steps.py",
           "x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)",
           "x = x + noise(sigma, sigma_next) * (1.05 * s_noise * sigma_up)", "coefficient", ANCESTRAL, DIFFUSERS),
    Mutant("ancestral-noise-x0.95", "samplerzoo/steps.py",
           "x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)",
           "x = x + noise(sigma, sigma_next) * (0.95 * s_noise * sigma_up)", "coefficient", ANCESTRAL, DIFFUSERS),
    Mutant("ancestral-noise-dropped", "samplerzoo/steps.py",
           "x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)",
           "x = x + 0 * noise(sigma, sigma_next) * (s_noise * sigma_up)", "dropped term", ANCESTRAL, DIFFUSERS),
    Mutant("ancestral-split-sigma-up-x1.05", "samplerzoo/steps.py",
           "sigma_up = torch.minimum(sigma_next, eta * (",
           "sigma_up = torch.minimum(sigma_next, 1.05 * eta * (", "coefficient",
           ("euler_ancestral", "dpm2_ancestral", "dpmpp_2s_ancestral", "res_multistep_ancestral")),
    Mutant("ancestral-step-to-sigma-next", "samplerzoo/steps.py",
           "x = ddim_step(x, denoised, sigma, sigma_down)",
           "x = ddim_step(x, denoised, sigma, sigma_next)", "swapped sigma", ANCESTRAL, DIFFUSERS),
    # ---------------------------------------------------------------- EDM's churn (steps.py, sde.py)
    Mutant("churn-gamma-over-n-plus-1", "samplerzoo/steps.py",
           "min(s_churn / (len(sigmas) - 1), math.sqrt(2) - 1)",
           "min(s_churn / len(sigmas), math.sqrt(2) - 1)", "coefficient", CHURNED, SDE),
    Mutant("churn-noise-x1.05", "samplerzoo/steps.py",
           "(s_noise * (sigma_hat**2 - sigma**2).sqrt())",
           "(1.05 * s_noise * (sigma_hat**2 - sigma**2).sqrt())", "coefficient", CHURNED, SDE),
    Mutant("churn-std-difference", "samplerzoo/steps.py",
           "(s_noise * (sigma_hat**2 - sigma**2).sqrt())",
           "(s_noise * (sigma_hat - sigma))", "wrong formula", CHURNED, SDE),
    Mutant("edm-s-churn-x1.05", "samplerzoo/samplers/sde.py",
           '{"s_churn": 40.0, "s_tmin": 0.05', '{"s_churn": 42.0, "s_tmin": 0.05', "coefficient", ("edm",), SDE),
    # ---------------------------------------------------------------- Restart
    Mutant("restart-jump-std-t-max", "samplerzoo/samplers/sde.py",
           "(s_noise * (levels[0] ** 2 - levels[-1] ** 2).sqrt())",
           "(s_noise * levels[0])", "wrong formula", ("restart",), SDE),
    Mutant("restart-jump-x1.05", "samplerzoo/samplers/sde.py",
           "(s_noise * (levels[0] ** 2 - levels[-1] ** 2).sqrt())",
           "(1.05 * s_noise * (levels[0] ** 2 - levels[-1] ** 2).sqrt())", "coefficient", ("restart",), SDE),
    Mutant("restart-one-pass-dropped", "samplerzoo/samplers/sde.py",
           "        for _ in range(k):\n            x = x + noise(levels[-1], levels[0])",
           "        for _ in range(k - 1):\n            x = x + noise(levels[-1], levels[0])", "dropped term",
           ("restart",), SDE),
    # ---------------------------------------------------------------- reverse diffusion (euler_maruyama, pc)
    Mutant("em-drift-x1.05", "samplerzoo/samplers/sde.py",
           "drift = g2 * score_of(x, sigma, denoised)", "drift = 1.05 * g2 * score_of(x, sigma, denoised)",
           "coefficient", ("euler_maruyama", "pc"), SDE),
    Mutant("em-noise-x1.05", "samplerzoo/samplers/sde.py",
           "drift = drift + noise(sigma, sigma_next) * g2.sqrt()",
           "drift = drift + noise(sigma, sigma_next) * (1.05 * g2.sqrt())", "coefficient", ("euler_maruyama", "pc"),
           SDE),
    Mutant("em-vp-ratio-swapped", "samplerzoo/samplers/sde.py",
           "ratio = ((1 + sigma_next**2) / (1 + sigma**2)).sqrt()",
           "ratio = ((1 + sigma**2) / (1 + sigma_next**2)).sqrt()", "swapped sigma", ("euler_maruyama", "pc"), SDE),
    Mutant("em-vp-drift-unscaled", "samplerzoo/samplers/sde.py",
           "return ratio * ((2 - ratio) * x + drift)", "return ratio * (2 - ratio) * x + drift", "dropped term",
           ("euler_maruyama", "pc"), SDE),
    Mutant("pc-corrector-step-x1.05", "samplerzoo/samplers/langevin.py",
           "eps = 2 * alpha.to(x.dtype)", "eps = 2.1 * alpha.to(x.dtype)", "coefficient", ("pc",), SDE),
    Mutant("pc-vp-alpha-swapped", "samplerzoo/samplers/langevin.py",
           "alpha = (1 + sigma_next**2) / (1 + sigma**2) if form",
           "alpha = (1 + sigma**2) / (1 + sigma_next**2) if form", "swapped sigma", ("pc",), SDE),
    # ---------------------------------------------------------------- Langevin
    Mutant("langevin-noise-x1.05", "samplerzoo/samplers/langevin.py",
           "return x + eps * score + (2 * eps).sqrt() * z", "return x + eps * score + (2.205 * eps).sqrt() * z",
           "coefficient", ("langevin", "pc"), SDE),
    Mutant("langevin-step-ratio-x1.05", "samplerzoo/samplers/langevin.py",
           "NCSN_STEP_RATIO = 0.2\n", "NCSN_STEP_RATIO = 0.21\n", "coefficient", ("langevin",), SDE),
    Mutant("langevin-level-above", "samplerzoo/samplers/langevin.py",
           "alpha_i = ratio * sigma**2", "alpha_i = ratio * sigmas[i] ** 2", "swapped sigma", ("langevin",), SDE),
    Mutant("langevin-denoising-step-dropped", "samplerzoo/samplers/langevin.py",
           "                x = denoised\n", "                x = x + 0 * denoised\n", "dropped term", ("langevin",),
           SDE),
    # ---------------------------------------------------------------- DDPM, Analytic-DPM
    Mutant("ddpm-fixed-small-x1.05", "samplerzoo/samplers/ancestral.py",
           "return sigma_down, sigma_next * (sigma**2 - sigma_next**2).sqrt() / sigma",
           "return sigma_down, 1.05 * sigma_next * (sigma**2 - sigma_next**2).sqrt() / sigma", "coefficient",
           ("ddpm", "ddpm_analytic"), DIFFUSERS + SDE),
    Mutant("ddpm-fixed-large-swapped", "samplerzoo/samplers/ancestral.py",
           "* (1 + sigma_next**2) / (1 + sigma**2)).sqrt()", "* (1 + sigma**2) / (1 + sigma_next**2)).sqrt()",
           "swapped sigma", ("ddpm",), DIFFUSERS),
    Mutant("analytic-variance-x1.05", "samplerzoo/samplers/sde.py",
           "variance = sigma_up**2 + (sigma - sigma_down) ** 2",
           "variance = sigma_up**2 + 1.05 * (sigma - sigma_down) ** 2", "coefficient", ("ddpm_analytic",), SDE),
    Mutant("analytic-gamma-swapped", "samplerzoo/samplers/sde.py",
           "return sigmas**2 / (sigma_data**2 + sigmas**2)", "return sigma_data**2 / (sigma_data**2 + sigmas**2)",
           "swapped sigma", ("ddpm_analytic",), SDE),
    # ---------------------------------------------------------------- DPM-Solver family
    Mutant("dpmpp-sde-noise-x1.05", "samplerzoo/samplers/dpm_solver.py",
           "(sigma_next * math.sqrt(-math.expm1(-2 * eta * h))",
           "(1.05 * sigma_next * math.sqrt(-math.expm1(-2 * eta * h))", "coefficient",
           ("dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"), DPM),
    Mutant("dpmpp-sde-damping-dropped", "samplerzoo/samplers/exponential.py",
           "return data_combination(x, (1 + eta) * math.log(float(sigma) / float(sigma_next))",
           "return data_combination(x, math.log(float(sigma) / float(sigma_next))", "dropped term",
           ("dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"), DPM),
    Mutant("dpmpp-sde-substep-noise-x1.05", "samplerzoo/samplers/dpm_solver.py",
           "return x + noise(sigma, sigma_next) * (s_noise * sigma_up) if sigma_up > 0 else x",
           "return x + noise(sigma, sigma_next) * (1.05 * s_noise * sigma_up) if sigma_up > 0 else x", "coefficient",
           ("dpmpp_sde",), DPM),
    Mutant("dpm2-ancestral-noise-x1.05", "samplerzoo/samplers/sde.py",
           "noise(sigma, sigma_next) * (s_noise * sigma_up)\n    return x",
           "noise(sigma, sigma_next) * (1.05 * s_noise * sigma_up)\n    return x", "coefficient",
           ("dpm2_ancestral",), SDE),
    Mutant("3m-second-difference-x1.05", "samplerzoo/samplers/exponential.py",
           '(0.5 if second_difference == "reference" else 1)', '(0.525 if second_difference == "reference" else 1)',
           "coefficient", ("dpmpp_3m", "dpmpp_3m_sde"), (*DPM, "tests/test_local_order.py")),
    Mutant("dpm2-midpoint-in-sigma", "samplerzoo/steps.py",
           "sigma_mid = (sigma * sigma_to).sqrt()", "sigma_mid = (sigma + sigma_to) / 2", "swapped sigma",
           ("dpm2", "dpm2_ancestral"), SDE),
    # ---------------------------------------------------------------- RES multistep
    Mutant("res-ancestral-history-at-sigma-next", "samplerzoo/samplers/res.py",
           "old_denoised, h_prev = unconditional, (sigmas[i] / sigma_down).log()",
           "old_denoised, h_prev = unconditional, (sigmas[i] / sigmas[i + 1]).log()", "swapped sigma",
           ("res_multistep",), MULTISTEP),
    Mutant("res-ancestral-noise-x1.05", "samplerzoo/samplers/res.py",
           "x = x + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)\n        old_denoised",
           "x = x + noise(sigmas[i], sigmas[i + 1]) * (1.05 * s_noise * sigma_up)\n        old_denoised",
           "coefficient", ("res_multistep",), MULTISTEP),
    # ---------------------------------------------------------------- linear multistep ODE solvers
    Mutant("ab4-coefficient-x1.05", "samplerzoo/samplers/multistep.py",
           "(55 / 24, -59 / 24, 37 / 24, -9 / 24)", "(55 / 24, -59 / 24, 37 / 24 * 1.05, -9 / 24)", "coefficient",
           ("ipndm", "plms", "pndm"), MULTISTEP + DIFFUSERS),
    Mutant("lms-history-reversed", "samplerzoo/samplers/multistep.py",
           "return lagrange_integrals(sigmas[i - k + 1:i + 1].flip(0), sigmas[i], sigmas[i + 1])",
           "return lagrange_integrals(sigmas[i - k + 1:i + 1], sigmas[i], sigmas[i + 1])", "swapped sigma",
           ("lms", "ipndm_v"), MULTISTEP),
    Mutant("deis-time-jacobian-x1.05", "samplerzoo/samplers/multistep.py",
           "* (vp.sigma(t) ** 2 + 1) / (2 * vp.sigma(t)))", "* (vp.sigma(t) ** 2 + 1) / (2.1 * vp.sigma(t)))",
           "coefficient", ("deis",), MULTISTEP),
    Mutant("pndm-rk4-weight-x1.05", "samplerzoo/samplers/multistep.py",
           "(e1 + 2 * e2 + 2 * e3 + e4)", "(e1 + 2 * e2 + 2.1 * e3 + e4)", "coefficient", ("pndm",), MULTISTEP),
    Mutant("plms-third-order-history", "samplerzoo/samplers/multistep.py",
           "ds = [*ds, d][-4:]", "ds = [*ds, d][-3:]", "dropped term", ("plms", "pndm"), MULTISTEP),
    # ---------------------------------------------------------------- UniPC
    Mutant("unipc-rho-x1.05", "samplerzoo/samplers/unipc.py",
           "return torch.linalg.solve(r, g), b_h", "return torch.linalg.solve(r, g) * 1.05, b_h", "coefficient",
           ("unipc",), ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    Mutant("unipc-predictor-rho-x1.05", "samplerzoo/samplers/unipc.py",
           UNIPC_WEIGHTS, UNIPC_WEIGHTS + "    rho = rho * 1.05 if value_next is None else rho\n",
           "coefficient", ("unipc",), ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    Mutant("unipc-corrector-rho-x1.05", "samplerzoo/samplers/unipc.py",
           UNIPC_WEIGHTS, UNIPC_WEIGHTS + "    rho = rho if value_next is None else rho * 1.05\n",
           "coefficient", ("unipc",), ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    Mutant("unipc-first-order-rho-x1.05", "samplerzoo/samplers/unipc.py",
           "return torch.full((1,), 0.5, dtype=h.dtype), b_h", "return torch.full((1,), 0.525, dtype=h.dtype), b_h",
           "coefficient", ("unipc",), ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    Mutant("unipc-corrector-dropped", "samplerzoo/samplers/unipc.py",
           "        if values:  # UniC", "        if False:  # UniC", "dropped term", ("unipc",),
           ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    # ---------------------------------------------------------------- Runge-Kutta
    Mutant("heun-correction-x1.05", "samplerzoo/samplers/ode.py",
           "x = x_hat + (d + d_next) / 2 * dt", "x = x_hat + (d + 1.05 * d_next) / 2 * dt", "coefficient",
           ("heun", "edm", "restart"), SDE),
    # ---------------------------------------------------------------- noise
    Mutant("brownian-increment-x1.05", "samplerzoo/noise.py",
           "scale = math.sqrt((self.sigma_max - self.sigma_min) / abs(float(sigma_next) - float(sigma)))",
           "scale = 1.05 * math.sqrt((self.sigma_max - self.sigma_min) / abs(float(sigma_next) - float(sigma)))",
           "coefficient", ("dpmpp_sde", "dpmpp_2m_sde"), ("tests/test_noise.py", *DPM)),
    # ---------------------------------------------------------------- SA-Solver
    Mutant("sa-solver-noise-x1.05", "samplerzoo/samplers/sa_solver.py",
           "step_noise = noise(sigmas[i], sigmas[i + 1]) * (spread * s_noise)",
           "step_noise = noise(sigmas[i], sigmas[i + 1]) * (1.05 * spread * s_noise)", "coefficient",
           ("sa_solver", "sa_solver_pece"), ("tests/test_sa_solver.py",)),
    Mutant("sa-solver-corrector-noise-dropped", "samplerzoo/samplers/sa_solver.py",
           "                x = x + step_noise\n", "                x = x + 0 * step_noise\n", "dropped term",
           ("sa_solver", "sa_solver_pece"), ("tests/test_sa_solver.py",)),
    # ---------------------------------------------------------------- SEEDS, exponential Heun
    Mutant("seeds-stage-noise-x1.05", "samplerzoo/samplers/seeds.py",
           "stage = stage + path * (sigma_r * s_noise)", "stage = stage + path * (1.05 * sigma_r * s_noise)",
           "coefficient", ("seeds_2", "seeds_3", "exp_heun_2_x0_sde"), ("tests/test_seeds.py",)),
    Mutant("seeds-difference-unscaled", "samplerzoo/samplers/seeds.py",
           "[denoised, (last - denoised) * (r / r_last)]", "[denoised, (last - denoised)]", "dropped term",
           ("seeds_2", "seeds_3"), ("tests/test_seeds.py",)),
    # ---------------------------------------------------------------- CFG++
    Mutant("cfg-pp-euler-guidance-x1.05", "samplerzoo/samplers/cfg_pp.py",
           "sigmas[i + 1], s_noise)\n        x = x + (guided - unconditional)",
           "sigmas[i + 1], s_noise)\n        x = x + 1.05 * (guided - unconditional)", "coefficient",
           ("euler_cfg_pp", "euler_ancestral_cfg_pp"), ("tests/test_cfg_pp.py",)),
    Mutant("cfg-pp-2m-history-guided", "samplerzoo/samplers/cfg_pp.py",
           "previous = unconditional", "previous = guided", "swapped history", ("dpmpp_2m_cfg_pp",),
           ("tests/test_cfg_pp.py",)),
    # ---------------------------------------------------------------- consistency samplers (consistency.py)
    Mutant("cm-epsilon-dropped", "samplerzoo/samplers/consistency.py",
           "(sigma_next**2 - epsilon**2).clamp_min(0).sqrt()", "sigma_next.clamp_min(0)", "dropped term",
           ("cm_multistep",), ("tests/test_consistency.py",)),
    Mutant("tcd-level-from-sigma", "samplerzoo/samplers/consistency.py",
           "sigma_s = tcd_level(model, sigmas[i + 1], gamma)", "sigma_s = tcd_level(model, sigmas[i], gamma)",
           "swapped sigma", ("tcd",), ("tests/test_consistency.py",)),
    # ---------------------------------------------------------------- rectified-flow samplers (flow.py)
    Mutant("rf-split-eta-x1.05", "samplerzoo/samplers/flow.py",
           "sigma_down = flow_sigma(t_next * (1 + (t_next / t - 1) * eta))",
           "sigma_down = flow_sigma(t_next * (1 + (t_next / t - 1) * (1.05 * eta)))", "coefficient",
           ("euler_ancestral_rf", "dpm_2_ancestral_rf", "dpmpp_2s_ancestral_rf"), ("tests/test_flow.py",)),
    Mutant("lcm-noise-at-sigma", "samplerzoo/samplers/flow.py",
           "lambda i: consistency_split(sigmas[i + 1], 0.0)", "lambda i: consistency_split(sigmas[i], 0.0)",
           "swapped sigma", ("lcm",), ("tests/test_lcm.py", "tests/test_consistency.py", "tests/test_flow.py")),
    # ---------------------------------------------------------------- singlestep DPM-Solver
    Mutant("singlestep-difference-unscaled", "samplerzoo/samplers/singlestep.py",
           "return [f0, (values[1] - f0) / r[0]], solver_type", "return [f0, values[1] - f0], solver_type",
           "dropped term", ("dpm_solver_singlestep",), ("tests/test_singlestep.py",)),
    # ---------------------------------------------------------------- EDM's ablation sampler
    Mutant("ablation-second-slope-x1.05", "samplerzoo/samplers/ablation.py",
           "1 / (2 * alpha) * d_prime)", "1.05 / (2 * alpha) * d_prime)", "coefficient", ("edm_ablation",),
           ("tests/test_ablation.py",)),
    # ---------------------------------------------------------------- Butcher tableaux, dopri5 (reference.py)
    Mutant("dopri5-b4-x1.05", "samplerzoo/samplers/reference.py",
           "b=(35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0)",
           "b=(35 / 384, 0, 500 / 1113, 125 / 192 * 1.05, -2187 / 6784, 11 / 84, 0)", "coefficient", ("dopri5",),
           ("tests/test_multistep.py", "tests/test_conformance.py")),
    Mutant("heun-tableau-b2-x1.05", "samplerzoo/samplers/reference.py",
           "HEUN = Tableau(c=(0, 1), a=((), (1,)), b=(1 / 2, 1 / 2))",
           "HEUN = Tableau(c=(0, 1), a=((), (1,)), b=(1 / 2, 1.05 / 2))", "coefficient",
           ("heun_2nd_order_final", "flow_heun"), ("tests/test_multistep.py", "tests/test_flow.py")),
    # ---------------------------------------------------------------- AMED-Solver (samplers/amed.py, amed.py)
    Mutant("amed-level-exponents-swapped", "samplerzoo/samplers/amed.py",
           "return sigma_next**r * sigma ** (1 - r)", "return sigma_next ** (1 - r) * sigma**r", "swapped sigma",
           ("amed", "ipndm_amed"), AMED),
    Mutant("amed-direction-scale-dropped", "samplerzoo/samplers/amed.py",
           "return x + per_sample(c, x) * (sigma_next - sigma) * slope", "return x + (sigma_next - sigma) * slope",
           "dropped term", ("amed",), AMED),
    Mutant("amed-time-scale-dropped", "samplerzoo/samplers/amed.py",
           "slope = to_d(y, per_sample(level, x), model(y, a * level))",
           "slope = to_d(y, per_sample(level, x), model(y, level))", "dropped term", ("amed",), AMED),
    Mutant("amed-ipndm-second-step-unscaled", "samplerzoo/samplers/amed.py",
           "return y + per_sample(c, x) * (sigma_next - per_sample(level, x)) * adams_bashforth(history), history",
           "return y + (sigma_next - per_sample(level, x)) * adams_bashforth(history), history", "dropped term",
           ("ipndm_amed",), AMED),
    Mutant("amed-embedding-halves-unswapped", "samplerzoo/amed.py",
           "return torch.cat([angles.sin(), angles.cos()], dim=1)",
           "return torch.cat([angles.cos(), angles.sin()], dim=1)", "swapped index", ("amed",), AMED),
    # ---------------------------------------------------------------- added 2026-12-02 (sixth session): uncovered code
    Mutant("er-sde-second-difference-unhalved", "samplerzoo/samplers/sde.py",
           "second = (first - history[1]) / ((sigma - sigmas[i - 2]) / 2)",
           "second = (first - history[1]) / (sigma - sigmas[i - 2])", "dropped term", ("er_sde",),
           ("tests/test_er_sde.py",)),
    Mutant("er-sde-noise-ratio-unsquared", "samplerzoo/samplers/sde.py",
           "spread = (sigma_next**2 - r**2 * sigma**2).clamp(min=0).sqrt()",
           "spread = (sigma_next**2 - r * sigma**2).clamp(min=0).sqrt()", "wrong formula", ("er_sde",),
           ("tests/test_er_sde.py",)),
    Mutant("heunpp2-weights-over-sigma-i", "samplerzoo/samplers/ode.py",
           "weights = [level / (len(slopes) * sigmas[0]) for level in levels]",
           "weights = [level / (len(slopes) * sigmas[i]) for level in levels]", "swapped sigma", ("heunpp2",),
           ("tests/test_seeds.py",)),
    Mutant("gradient-estimation-gamma-off-by-one", "samplerzoo/samplers/ode.py",
           "x = x + (ge_gamma - 1) * (d - old_d) * dt", "x = x + ge_gamma * (d - old_d) * dt", "coefficient",
           ("gradient_estimation",), ("tests/test_cfg_pp.py",)),
    Mutant("ab3-coefficient-x1.05", "samplerzoo/samplers/multistep.py",
           "(23 / 12, -16 / 12, 5 / 12)", "(23 / 12, -16 / 12, 5 / 12 * 1.05)", "coefficient",
           ("ipndm", "plms", "pndm"), MULTISTEP + DIFFUSERS),
    Mutant("res-multistep-phi2-x1.05", "samplerzoo/samplers/res.py",
           "phi_1, phi_2 = phi(1, -h), phi(2, -h)", "phi_1, phi_2 = phi(1, -h), 1.05 * phi(2, -h)", "coefficient",
           ("res_multistep",), (*MULTISTEP, "tests/test_cfg_pp.py")),
    Mutant("dpm-solver-3-r1-x1.05", "samplerzoo/samplers/singlestep.py",
           "r1 = (1 / 2 if order == 2 else 1 / 3) if r1 is None else r1",
           "r1 = (1 / 2 if order == 2 else 1.05 / 3) if r1 is None else r1", "coefficient", ("dpm_solver",),
           (*DPM, "tests/test_singlestep.py", "tests/test_seeds.py")),
    Mutant("dpm-fast-remainder-orders-swapped", "samplerzoo/samplers/singlestep.py",
           "[3] * (steps - 2) + [2, 1]", "[3] * (steps - 2) + [1, 2]", "swapped index", ("dpm_fast",), DPM),
    Mutant("dpm-adaptive-pid-b2-derivative-once", "samplerzoo/samplers/singlestep.py",
           "-(pcoeff + 2 * dcoeff) / order", "-(pcoeff + dcoeff) / order", "coefficient", ("dpm_adaptive",), DPM),
    Mutant("dpmpp-2m-sde-heun-midpoint-weight", "samplerzoo/samplers/dpm_solver.py",
           'return multistep_dpm_solver(model, x, sigmas, 2, noise, callback, eta, s_noise, "heun")',
           'return multistep_dpm_solver(model, x, sigmas, 2, noise, callback, eta, s_noise, "midpoint")',
           "swapped option", ("dpmpp_2m_sde_heun",), DPM),
    Mutant("data-step-midpoint-weight-x1.05", "samplerzoo/samplers/exponential.py",
           "weight = data_weight(0, h_hat) / 2 if first_weight_only", "weight = data_weight(0, h_hat) / 2.1 if "
           "first_weight_only", "coefficient", ("dpmpp_2m", "dpmpp_2s_ancestral", "dpm_solver_singlestep"),
           (*DPM, "tests/test_singlestep.py")),
    Mutant("unipc-b-h-variants-swapped", "samplerzoo/samplers/unipc.py",
           'b_h = hh if variant == "bh1" else hh.expm1()', 'b_h = hh if variant == "bh2" else hh.expm1()',
           "swapped option", ("unipc",), ("tests/test_local_order.py", "tests/test_dpm_solver.py")),
    Mutant("exp-heun-2-x0-phi-1-weight", "samplerzoo/samplers/seeds.py",
           'solver_type: Literal["phi_1", "phi_2"] = "phi_2") -> Tensor:\n    """Exponential Heun',
           'solver_type: Literal["phi_1", "phi_2"] = "phi_1") -> Tensor:\n    """Exponential Heun',
           "swapped option", ("exp_heun_2_x0",), ("tests/test_seeds.py",)),
    Mutant("flow-midpoint-stage-x1.05", "samplerzoo/samplers/reference.py",
           "MIDPOINT = Tableau(c=(0, 1 / 2), a=((), (1 / 2,)), b=(0, 1))",
           "MIDPOINT = Tableau(c=(0, 1 / 2), a=((), (1.05 / 2,)), b=(0, 1))", "coefficient", ("flow_midpoint",),
           ("tests/test_flow.py", "tests/test_flow_agreement.py")),
    Mutant("ancestral-split-eta-squared", "samplerzoo/steps.py",
           "eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).sqrt())",
           "eta**2 * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).sqrt())", "wrong formula",
           ("ddim", "euler_ancestral", "res_multistep_ancestral"), (*DIFFUSERS, *SDE)),
    Mutant("afs-noise-unnormalised", "samplerzoo/samplers/wrappers.py",
           "return x - sigma * x / (1 + sigma**2).sqrt()", "return x - sigma * x / (1 + sigma**2)", "wrong formula",
           files=("tests/test_sampler_options.py", "tests/test_amed.py")),
    Mutant("threshold-quantile-of-signed-d", "samplerzoo/samplers/wrappers.py",
           "s = torch.quantile(flat.abs(), ratio, dim=1)", "s = torch.quantile(flat, ratio, dim=1)", "dropped term",
           files=("tests/test_sampler_options.py", *DIFFUSERS)),
    Mutant("v-adapter-sigma-data-one", "samplerzoo/adapters.py",
           "return sd**2 / (sigma**2 + sd**2), -sigma * sd / (sigma**2 + sd**2).sqrt()",
           "return 1 / (sigma**2 + 1), -sigma / (sigma**2 + 1).sqrt()", "dropped term",
           files=("tests/test_adapters.py", "tests/test_flow.py", "tests/test_flow_agreement.py")),
    Mutant("flow-adapter-c-out-one-minus-t", "samplerzoo/adapters.py",
           "return 1 / (1 + sigma), -sigma / (1 + sigma)", "return 1 / (1 + sigma), -1 / (1 + sigma)",
           "swapped sigma", files=("tests/test_adapters.py", "tests/test_flow.py", "tests/test_flow_agreement.py")),
    Mutant("edm-c-skip-sigma-data-unsquared", "samplerzoo/adapters.py",
           "return sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()",
           "return sd / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()", "wrong formula",
           files=("tests/test_adapters.py",)),
    Mutant("karras-default-rho-x1.05", "samplerzoo/schedules.py",
           "def karras(n: int, model: HasSigmaRange, rho: float = 7.0)",
           "def karras(n: int, model: HasSigmaRange, rho: float = 7.35)", "coefficient",
           files=("tests/test_schedules.py",)),
    Mutant("exponential-schedule-linear-in-sigma", "samplerzoo/schedules.py",
           "torch.linspace(math.log(top), math.log(model.sigma_min), n, dtype=torch.float64).exp()",
           "torch.linspace(top, model.sigma_min, n, dtype=torch.float64)", "wrong formula",
           files=("tests/test_schedules.py",)),
    Mutant("cfg-batched-halves-swapped", "samplerzoo/guidance.py",
           "conditional, unconditional = both.chunk(2)", "unconditional, conditional = both.chunk(2)",
           "swapped index", files=("tests/test_guidance.py", "tests/test_cfg_pp.py")),
    Mutant("classifier-guidance-sigma-unsquared", "samplerzoo/guidance.py",
           "self.scale * per_sample(sigma, x) ** 2 * grad", "self.scale * per_sample(sigma, x) * grad",
           "wrong formula", files=("tests/test_guidance.py",)),
    Mutant("sa-solver-damping-tau-unsquared", "samplerzoo/samplers/sa_solver.py",
           "math.exp(-(tau**2) * h))", "math.exp(-tau * h))", "wrong formula", ("sa_solver",),
           ("tests/test_sa_solver.py",)),
    Mutant("time-shift-kinds-swapped", "samplerzoo/flow.py",
           'scale = math.exp(self.mu) if self.kind == "exponential" else self.mu',
           'scale = math.exp(self.mu) if self.kind == "linear" else self.mu', "swapped option",
           files=("tests/test_flow.py", "tests/test_flow_agreement.py")),
    Mutant("ddim-step-from-inf-finite-form", "samplerzoo/steps.py",
           "return denoised + sigma_to.to(x.dtype) * x", "return denoised + sigma_to.to(x.dtype) * (x - denoised)",
           "wrong formula", ("euler", "ddim", "lcm"), ("tests/test_flow.py",)),
    Mutant("final-denoise-one-level-up", "samplerzoo/sampling.py",
           "samples = denoise(counter, samples, sigmas[-1])", "samples = denoise(counter, samples, sigmas[-2])",
           "swapped index", files=("tests/test_samplers.py::test_denoise_final_step_is_the_denoised_sigma_min_sample",
                                   "tests/test_samplers.py::test_final_step_semantics_spend_the_budget")),
    # ---------------------------------------------------------------- the harness
    Mutant("harness-last-sample-dropped", "samplerzoo/bench/harness.py",
           "features = meter.features(to_uint8(images.float())) if score and not bad else None",
           "features = meter.features(to_uint8(images.float())[:-1 if seeds[-1] == point.seed + point.samples - 1 "
           "else None]) if score and not bad else None",
           "dropped sample", files=BENCH),
    Mutant("harness-seeds-off-by-one", "samplerzoo/bench/harness.py",
           "seeds = range(point.seed + start, point.seed + stop)",
           "seeds = range(point.seed + start + 1, point.seed + stop + 1)", "swapped index", files=BENCH),
]


def copy_tree(rev: str | None, into: Path) -> None:
    """The files of ``rev`` (git archive), or the working tree's tracked and untracked-but-not-ignored files."""
    if rev is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True)
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(into, filter="data")
        return
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)


def run_tests(tree: Path, args: list[str], timeout: float) -> tuple[str, str]:
    """Run pytest in ``tree`` on the ``args`` whose files exist there: ('passed' | 'failed' | 'error', first failing
    test or message)."""
    args = [a for a in args if not a.startswith("tests/") or (tree / a.split("::")[0]).exists()]
    if not any(a.startswith("tests/") for a in args):
        return "passed", ""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *args]
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "error", f"timed out after {timeout:.0f} s"
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", done.stdout, re.MULTILINE)
    if done.returncode == 1 and failed:
        return "failed", failed[0]
    if done.returncode in (0, 5):  # 5: nothing selected
        return "passed", ""
    return "error", (done.stdout + done.stderr).strip().splitlines()[-1] if (done.stdout + done.stderr).strip() else ""


def check_imports_from(tree: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    found = subprocess.run([sys.executable, "-c", "import samplerzoo; print(samplerzoo.__file__)"], cwd=tree, env=env,
                           capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"error: samplerzoo imports from {found}, not from the copy {tree}")


def mutate(mutant: Mutant, rev: str | None, timeout: float) -> tuple[str, str, float]:
    """(result, detail, seconds) for one mutant: killed / survived / not applicable / error."""
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as directory:
        tree = Path(directory)
        copy_tree(rev, tree)
        target = tree / mutant.path
        text = target.read_text() if target.exists() else ""
        if text.count(mutant.old) != 1:
            return "not applicable", f"text found {text.count(mutant.old)} times", 0.0
        target.write_text(text.replace(mutant.old, mutant.new))
        check_imports_from(tree)
        for args in mutant.invocations():
            outcome, detail = run_tests(tree, args, timeout)
            if outcome == "failed":
                return "killed", detail, time.perf_counter() - tick
            if outcome == "error":
                return "error", detail, time.perf_counter() - tick
    return "survived", "", time.perf_counter() - tick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rev", help="a git revision to mutate (default: the working tree)")
    parser.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per pytest run")
    parser.add_argument("--out", type=Path, help="write the report (Markdown) here")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    by_name = {m.name: m for m in MUTANTS}
    unknown = [name for name in args.only or () if name not in by_name]
    if unknown:
        raise SystemExit(f"error: no mutant named {', '.join(unknown)} (see --list)")
    chosen = [by_name[name] for name in args.only] if args.only else MUTANTS  # in the order given
    if args.list:  # with how often each mutant's text occurs in the working tree (it must be once)
        for m in chosen:
            print(f"{m.name:40s} {m.kind:15s} {m.path:36s} {(ROOT / m.path).read_text().count(m.old)}")
        return
    rows = []
    for mutant in chosen:
        result, detail, seconds = mutate(mutant, args.rev, args.timeout)
        rows.append((mutant, result, detail, seconds))
        print(f"{mutant.name:40s} {result:15s} {seconds:7.1f}s {detail}", flush=True)
        if args.out:  # after every mutant, so a stopped run leaves the report of what it ran
            args.out.write_text(report(rows, args.rev, len(chosen)))
    print(summary(rows))


def summary(rows: list[tuple[Mutant, str, str, float]]) -> str:
    applicable = [r for r in rows if r[1] in ("killed", "survived")]
    killed = sum(r[1] == "killed" for r in applicable)
    return f"{killed} of {len(applicable)} applicable mutants killed ({killed / max(1, len(applicable)):.0%})"


def report(rows: list[tuple[Mutant, str, str, float]], rev: str | None, chosen: int) -> str:
    lines = [f"```bash\npython benchmarks/mutants.py {' '.join(sys.argv[1:])}\n```\n",
             f"Tree: {rev or 'working tree'}. {summary(rows)}; {len(rows)} of the {chosen} chosen run.\n",
             "| mutant | kind | file | result | first failing test | s |", "|---|---|---|---|---|---:|"]
    lines += [f"| {m.name} | {m.kind} | {m.path} | {result} | {detail.replace('|', '/')} | {seconds:.0f} |"
              for m, result, detail, seconds in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
