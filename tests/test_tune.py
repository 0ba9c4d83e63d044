"""zoo tune's searches (GITS, OptimalSteps, Analytic-DPM) on exact models, and the schedule files they write."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import pytest
import torch
from cli_driver import zoo

import samplerzoo as sz
from samplerzoo.analytic import Gaussian
from samplerzoo.noise import SeededNoise
from samplerzoo.schedule_files import ScheduleFile, read_schedule_file, schedule_record, sha256, write_schedule_file
from samplerzoo.schedules import karras
from samplerzoo.tuning import Search, analytic_dpm_costs, eps_moment, least_cost_path, tune

STD = 0.5
GAUSSIAN = Gaussian(torch.zeros(16, dtype=torch.float64), STD, sigma_min=0.01, sigma_max=20.0)


def path_cost(cost: torch.Tensor, path: tuple[int, ...], coeff: float) -> float:
    return sum(coeff**k * float(cost[a, b]) for k, (a, b) in enumerate(itertools.pairwise(path)))


@pytest.mark.parametrize("coeff", [1.0, 1.15])
def test_least_cost_path_is_the_brute_force_minimum(coeff: float) -> None:
    n, edges = 8, 3
    cost = torch.rand(n, n, generator=torch.Generator().manual_seed(1), dtype=torch.float64).triu(1)
    cost = torch.where(cost > 0, cost, torch.full_like(cost, math.inf))
    paths = [(0, *middle, n - 1) for middle in itertools.combinations(range(1, n - 1), edges - 1)]
    best = min(paths, key=lambda p: path_cost(cost, p, coeff))
    found, objective = least_cost_path(cost, edges, coeff)
    assert tuple(found) == best and math.isclose(objective, path_cost(cost, best, coeff), rel_tol=1e-12)


def test_analytic_dpm_cost_is_the_seeds_optimal_variance_ratio() -> None:
    # Bao et al. 2022, Thm 1 / the seeds' slides, in alpha-bar form: lambda^2 is DDPM's posterior variance of the
    # jump t -> s, gamma*^2 = lambda^2 + (sqrt((1 - abar_t) abar_s / abar_t) - sqrt(1 - abar_s - lambda^2))^2 (1 - G).
    levels = torch.tensor([20.0, 5.0, 1.3, 0.2, 0.01], dtype=torch.float64)
    moments = torch.tensor([0.999, 0.9, 0.6, 0.1, 0.0004], dtype=torch.float64)
    ours = analytic_dpm_costs(levels, moments)
    for i, j in itertools.combinations(range(len(levels)), 2):
        abar_t, abar_s = 1 / (1 + levels[i] ** 2), 1 / (1 + levels[j] ** 2)
        lam2 = (1 - abar_s) / (1 - abar_t) * (1 - abar_t / abar_s)
        gap = ((1 - abar_t) * abar_s / abar_t).sqrt() - (1 - abar_s - lam2).sqrt()
        gamma2 = lam2 + gap**2 * (1 - moments[i])
        assert math.isclose(float(ours[i, j]), float(torch.log(gamma2 / lam2)), rel_tol=1e-9)
    lower = torch.ones_like(ours, dtype=torch.bool).tril()
    assert torch.isinf(ours[lower]).all()  # no step up or in place


def test_eps_moment_of_a_gaussian_is_sigma2_over_sigma2_plus_s2() -> None:
    # Data N(0, s^2 I): the optimal eps(x) = sigma x / (s^2 + sigma^2), so E||eps||^2 / d = sigma^2 / (s^2 + sigma^2).
    levels = torch.tensor([10.0, 1.0, 0.3, 0.02], dtype=torch.float64)
    noise = SeededNoise(range(400), (16,), dtype=torch.float64)
    x0 = STD * SeededNoise(range(1000, 1400), (16,), dtype=torch.float64).randn()
    exact = levels**2 / (levels**2 + STD**2)
    torch.testing.assert_close(eps_moment(GAUSSIAN, x0, levels, noise), exact, rtol=0.02, atol=0)


def euler_error(sigmas: torch.Tensor, x: torch.Tensor) -> float:
    """Final error of Euler on ``sigmas`` against the Gaussian's exact ODE solution."""
    out = sz.get_sampler("euler").fn(GAUSSIAN, x, sigmas)
    exact = GAUSSIAN.ode_solution(x, float(sigmas[0]), float(sigmas[-1]))
    return float((out - exact).norm())


@pytest.mark.parametrize("method", ["gits", "oss"])
def test_tuned_euler_beats_karras_at_the_same_nfe(method: str) -> None:
    search = Search("euler", 4, method, seed=0, trajectories=8, grid=24, metric="l2")
    found = tune(GAUSSIAN, (16,), search)
    assert len(found.sigmas) == 5 and found.sigmas[-1] == 0 and (found.sigmas[1:] < found.sigmas[:-1]).all()
    assert found.teacher_nfe == 2 * 24 - 1  # Heun over 24 levels and the Euler step to 0
    if method == "gits":  # one evaluation per node leaving it: the cached first call of every step
        assert found.search_nfe == 24 and found.objective is not None and found.objective > 0
    x = 20.0 * SeededNoise(range(50, 58), (16,), dtype=torch.float64).randn()
    assert euler_error(found.sigmas, x) < 0.8 * euler_error(karras(4, GAUSSIAN), x)


def test_analytic_dpm_finds_the_least_kl_trajectory() -> None:
    search = Search("euler_ancestral", 4, "analytic-dpm", trajectories=64, grid=10)
    found = tune(GAUSSIAN, (16,), search)
    levels = karras(10, GAUSSIAN)[:-1]
    exact = analytic_dpm_costs(levels, levels**2 / (levels**2 + STD**2))
    paths = [(0, *middle, 9) for middle in itertools.combinations(range(1, 9), 2)]  # 4 levels, then 0
    optimum = min(path_cost(exact, p, 1.0) for p in paths)
    chosen = tuple(int((levels - s).abs().argmin()) for s in found.sigmas[:-1])
    assert found.sigmas[-1] == 0 and chosen[0] == 0 and chosen[-1] == 9
    assert path_cost(exact, chosen, 1.0) <= optimum * 1.02


def test_plans_fail_in_one_line_before_any_work() -> None:
    with pytest.raises(sz.SamplerzooError, match=r"matches deterministic trajectories.*euler_ancestral"):
        tune(GAUSSIAN, (16,), Search("euler_ancestral", 4, "gits"))
    with pytest.raises(sz.UnknownNameError, match="tuning method 'dp'"):
        tune(GAUSSIAN, (16,), Search("euler", 4, "dp"))
    with pytest.raises(sz.SamplerzooError, match="the grid needs at least"):
        tune(GAUSSIAN, (16,), Search("euler", 10, "gits", grid=5))


def test_zoo_tune_writes_a_file_that_file_path_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tuned.json"
    code, out, err = zoo(["tune", "--checkpoint", "digits-ideal", "--sampler", "dpmpp_2m", "--nfe", "3", "--method",
                          "gits", "--trajectories", "4", "--grid", "8", "--out", str(path)], monkeypatch, capsys)
    assert code == 0, err
    content = read_schedule_file(path)
    assert (content.method, content.sampler, content.nfe, content.checkpoint) == ("gits", "dpmpp_2m", 3, "digits-ideal")
    assert content.cost["nfe"] == content.cost["teacher_nfe"] + content.cost["search_nfe"] and content.seed == 0
    assert "search cost" in out and f"--schedule file:{path}" in out.replace("\n", "")
    run = sz.generate(sz.load("digits-ideal"), "dpmpp_2m", 3, range(2), (1, 8, 8), schedule=f"file:{path}")
    assert run.counted_nfe == 3 and run.sigmas.tolist() == list(content.sigmas)
    record = schedule_record(f"file:{path}")["schedule_file"]
    assert record["method"] == "gits" and len(record["sha256"]) == 64
    # The same file is refused for another budget, and an existing --out is not overwritten.
    code, _, err = zoo(["sample", "--checkpoint", "digits-ideal", "--sampler", "dpmpp_2m", "--nfe", "5", "--schedule",
                        f"file:{path}", "--out", str(tmp_path / "grid.png")], monkeypatch, capsys)
    assert code == 1 and "holds 3 noise levels (gits for dpmpp_2m at NFE 3 on digits-ideal)" in err
    assert "needs 5" in err and len(err.strip().splitlines()) == 1
    code, _, err = zoo(["tune", "--checkpoint", "digits-ideal", "--out", str(path)], monkeypatch, capsys)
    assert code == 1 and "already exists" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(("content", "message"), [
    (None, "file not found"),
    ("{not json", "not valid JSON"),
    ('{"levels": [1, 0]}', "expected a JSON object with 'sigmas'"),
    ('{"sigmas": [1, 2, 0]}', "must decrease strictly"),
    ('{"sigmas": [1, "a", 0]}', "must be a non-empty list of numbers"),
    ('{"sigmas": [1, NaN, 0]}', "finite and positive"),
    ('{"sigmas": [0]}', "finite and positive"),
])
def test_bad_schedule_files_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], content: str | None,
                                         message: str) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    code, _, err = zoo(["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "3", "--schedule",
                        f"file:{path}", "--results", str(tmp_path / "rows.jsonl")], monkeypatch, capsys)
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "rows.jsonl").exists()


def test_schedule_files_round_trip_and_describe_themselves(tmp_path: Path) -> None:
    written = ScheduleFile((9.0, 2.0, 0.5), "oss", "heun", "digits", 5, "sigma_min", 3, {"nfe": 10})
    digest = write_schedule_file(tmp_path / "a" / "s.json", written)
    assert read_schedule_file(tmp_path / "a" / "s.json") == written and len(digest) == 64
    assert json.loads((tmp_path / "a" / "s.json").read_text())["format"] == "samplerzoo-schedule"
    assert written.levels == (9.0, 2.0, 0.5) and ScheduleFile((3.0, 1.0)).describe() == "no method recorded"
    sigmas = sz.get_schedule(f"file:{tmp_path / 'a' / 's.json'}")(3, GAUSSIAN)
    assert sigmas.tolist() == [9.0, 2.0, 0.5, 0.0]
    with pytest.raises(sz.SamplerzooError, match="needs the path of a schedule file: file:PATH"):
        sz.get_schedule("file")(3, GAUSSIAN)


def test_bench_rows_record_the_schedule_file(tmp_path: Path) -> None:
    from samplerzoo.bench.harness import sweep

    path = tmp_path / "s.json"
    write_schedule_file(path, ScheduleFile((80.0, 5.0, 0.3), "gits", "euler", "digits-ideal", 3, "sigma_min"))
    rows = sweep("digits-ideal", ["euler"], [f"file:{path}", "align_your_steps:sd15"], [3], 16, 0,
                 tmp_path / "rows.jsonl", metric_names=("fid",))
    assert [(row["schedule"], row["status"]) for row in rows] == [(f"file:{path}", "ok"), ("ays:sd15", "ok")]
    assert rows[0]["schedule_file"]["sha256"] == sha256(path) and rows[0]["counted_nfe"] == 3
    assert rows[0]["provenance"]["schedule"]["plugin"] == "builtin" and "schedule_file" not in rows[1]


def test_a_sweep_refuses_a_schedule_file_for_another_nfe_before_any_work(tmp_path: Path) -> None:
    from samplerzoo.bench.harness import sweep

    path = tmp_path / "s.json"
    write_schedule_file(path, ScheduleFile((80.0, 5.0, 0.3), "gits", "euler", "digits-ideal", 3))
    with pytest.raises(sz.SamplerzooError, match=r"holds 3 noise levels .* this run needs 4"):
        sweep("digits-ideal", ["euler"], [f"file:{path}"], [3, 4], 16, 0, tmp_path / "rows.jsonl",
              metric_names=("fid",))
    assert not (tmp_path / "rows.jsonl").exists() or not (tmp_path / "rows.jsonl").read_text().strip()


def test_a_schedule_file_plans_on_a_model_that_starts_at_infinity(tmp_path: Path) -> None:
    """A flow checkpoint's sigma_max is inf: the plan reads a fixed-length file's own levels to see where it starts,
    instead of asking it for one level (which it refuses), and spends the whole budget on the file's steps."""
    from samplerzoo.sampling import sampling_plan

    flow = sz.load("digits-flow")
    assert math.isinf(flow.sigma_max)
    path = tmp_path / "s.json"
    write_schedule_file(path, ScheduleFile((999.0, 1.2, 0.5), "gits", "dpmpp_2m", "digits-flow", 3, "zero"))
    final, sigmas = sampling_plan(flow, "dpmpp_2m", 3, f"file:{path}")
    assert final == "zero" and sigmas.tolist() == [999.0, 1.2, 0.5, 0.0]
    with pytest.raises(sz.SamplerzooError, match=r"holds 3 noise levels .* this run needs 4"):
        sampling_plan(flow, "dpmpp_2m", 4, f"file:{path}")
