"""The claims of results/sweeps/README.md (benchmarks/check_claims.py)."""

from __future__ import annotations

from functools import cache

from claims_core import (
    Claim,
    Fields,
    Table,
    best_each,
    fixed,
    names,
    ranked,
    require,
    sweep,
    table_column,
)

from samplerzoo.schedules import SigmaRange, karras

README = "results/sweeps/README.md"


TABLES = [
    Table(README, "| solver | 5 | 6 | 8 | 10 | 20 | 50 |", "digits", {1: 5, 2: 6, 3: 8, 4: 10, 5: 20, 6: 50}),
    Table(README, "| solver | digits-ideal NFE 5 | NFE 10 |", "digits-ideal", {1: 5, 2: 10}),
]


def digits_ideal_wall() -> Fields:
    minutes = sum(r["wall_seconds"] for r in sweep("digits-ideal").rows if "wall_seconds" in r) / 60
    return {"points": str(len(sweep("digits-ideal").rows)), "hours": str(int(minutes // 60)),
            "minutes": str(round(minutes % 60))}


def digits_per_nfe() -> Fields:
    per_nfe = [r["sampling_seconds"] / r["counted_nfe"] for r in sweep("digits").ok]
    return {"points": str(len(sweep("digits").rows)), "worst": fixed(max(per_nfe), 1), "best": fixed(min(per_nfe), 2)}


def grid() -> Fields:
    both = [sweep(name) for name in ("digits", "digits-ideal")]
    deterministic, stochastic = ({", ".join(map(str, s.nfes(kind))) for s in both} for kind in (False, True))
    samples = {r["samples"] for s in both for r in s.rows}
    seeds = {r["seed"] for s in both for r in s.rows}
    references = {r["reference_samples"] for s in both for r in s.rows}
    if len(deterministic) != 1 or len(stochastic) != 1 or len(samples) != 1 or seeds != {0} or len(references) != 1:
        raise ValueError("the two sweeps differ in their grid, samples, seeds or reference")
    n = samples.pop()
    return {"deterministic": deterministic.pop(), "stochastic": stochastic.pop(), "samples": f"{n:,}",
            "last_seed": str(n - 1), "reference": f"{references.pop():,}"}


def range_from(name: str, first_nfe: int, stochastic: bool, places: int = 2) -> Fields:
    s = sweep(name)
    at = s.fids([n for n in s.nfes(stochastic) if n >= first_nfe], stochastic)
    return {"low": fixed(min(at.values()), places), "high": fixed(max(at.values()), places)}


def digits_from_20() -> Fields:
    s = sweep("digits")
    later = s.fids([n for n in s.nfes(False) if n >= 20], False)
    at_20 = s.fids([20], False)
    worst = sorted((name for name, _ in at_20), key=lambda name: -at_20[name, 20])[:2]
    rest = [v for (name, _), v in later.items() if name not in worst]
    return {"low": fixed(min(later.values()), 2), "high": fixed(max(later.values()), 2), "worst": " and ".join(worst),
            "worst_20": fixed(max(s.fid(w, 20) for w in worst), 3),
            "worst_35": fixed(max(s.fid(w, 35) for w in worst), 3), "rest_high": fixed(max(rest), 2)}


def wins(name: str, nfes: list[int]) -> Fields:
    winners = {sweep(name).best(n, False)[0] for n in nfes}
    return {"winner": names(sorted(winners)), "first": str(nfes[0]), "last": str(nfes[-1])}


def low_nfe_range(name: str) -> Fields:
    at = sweep(name).fids([3, 4, 5], False)
    return {"low": fixed(min(at.values()), 1), "high": fixed(max(at.values()), 0)}


def digits_stochastic_50() -> Fields:
    s = sweep("digits")
    sde = ("dpmpp_sde", "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde")
    at = {name: v for (name, _), v in s.fids([50], True).items()}
    deterministic_best = min(s.fids([50], False).values())
    order = ranked(at)
    return {"count": str(sum(v < deterministic_best for v in at.values())),
            "deterministic": fixed(deterministic_best, 2),
            "best_name": order[0], "best": fixed(at[order[0]], 3), "restart": fixed(at["restart"], 3),
            "sde_low": fixed(min(at[n] for n in sde), 2), "sde_high": fixed(max(at[n] for n in sde), 2),
            "worst": f"{order[-1]} {fixed(at[order[-1]], 2)}"}


def ideal_not_monotone() -> Fields:
    s = sweep("digits-ideal")
    both = [name for name in sorted({k[0] for k in s.fids([3], False)}) if (name, 4) in s.fids([4], False)]
    worse = [name for name in both if s.fid(name, 4) > s.fid(name, 3)]
    steps = [karras(n, SigmaRange(0.002, 80.0)) for n in (3, 4)]
    return {"count": str(len(worse)), "of": str(len(both)), "example": f"{s.fid('dpmpp_2m', 3):.2f} -> "
            f"{s.fid('dpmpp_2m', 4):.2f}", "three": " -> ".join(f"{float(x):.3g}" for x in steps[0]),
            "four": " -> ".join(f"{float(x):.3g}" for x in steps[1])}


def restart_low_nfe() -> Fields:
    s = sweep("digits-ideal")
    return {"fid_10": fixed(s.fid("restart", 10), 0), "fid_20": fixed(s.fid("restart", 20), 3),
            "best_20": fixed(s.best(20, True)[1], 3)}


def floor_fid() -> Fields:
    """The held-out floor the first rows record (rows added later record the resampled floor of their own point)."""
    floors = {r["floor"]["fid"] for name in ("digits", "digits-ideal") for r in sweep(name).ok
              if r.get("floor_samples") == 297}
    if len(floors) != 1:
        raise ValueError("the sweeps record different floors")
    return {"floor": fixed(floors.pop(), 2)}


RESAMPLING_COMMAND = """\
from samplerzoo.bench.harness import reference_images
from samplerzoo.bench.metrics import TensorImages, measure
from samplerzoo.data import digits, to_uint8
import torch
train = to_uint8(digits("train")[0])
idx = torch.randint(len(train), (2000,), generator=torch.Generator().manual_seed(0))
measure(TensorImages(train[idx]), reference_images("digits-train"), "digits-train", ["fid", "kid"], "digits-classifier")
"""
"""The README's command for the resampling floor: 2,000 training images drawn with replacement."""


@cache
def resampling_floor() -> dict[str, float]:
    """Run the README's command (the README must keep showing it: its claim below checks that)."""
    scope: dict[str, object] = {}
    exec(RESAMPLING_COMMAND.replace("measure(TensorImages", "result = measure(TensorImages"), scope)
    return scope["result"]  # type: ignore[return-value]


def resampling_floor_fields() -> Fields:
    floor = resampling_floor()
    return {"fid": fixed(floor["fid"], 3), "kid": fixed(floor["kid"], 4)}


def ideal_reaches_floor() -> Fields:
    s, floor = sweep("digits-ideal"), resampling_floor()["fid"]
    later = s.fids([n for n in s.nfes(False) if n >= 20], False)
    worst = {name: max(v for (other, _), v in later.items() if other == name) for name, _ in later}
    near = sorted(name for name, v in worst.items() if v < floor + 0.1)
    far = sorted((name for name in worst if name not in near), key=lambda name: -worst[name])
    return {"count": str(len(near)), "total": str(len(worst)), "high": fixed(max(worst[n] for n in near), 3),
            "far": " and ".join(f"{name} ({fixed(worst[name], 3)})" for name in far),
            "best": fixed(min(later.values()), 3)}


def third_order_behind() -> Fields:
    s, table = sweep("digits"), TABLES[0]
    where = [n for n in table.nfe_columns.values()
             if min(s.fid(a, n) for a in ("dpmpp_3m", "unipc")) > max(s.fid(b, n) for b in ("deis", "dpmpp_2m"))]
    return {"where": ", ".join(map(str, where))}


ORDINALS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth")


def diff_sampler_agreement() -> Fields:
    table, multistep = TABLES[1], {"dpmpp_3m", "unipc", "deis", "ipndm"}
    s = sweep(table.checkpoint)
    ours = {n: {name: s.fid(name, n) for name in table_column(table, 1)} for n in (5, 10)}
    cifar = {5: table_column(table, 3), 10: table_column(table, 4)}
    require(set(ranked(ours[5])[:4]) == multistep, f"best four on digits-ideal at NFE 5: {ranked(ours[5])[:4]}")
    require(multistep <= set(ranked(cifar[5])[:5]), f"best five on CIFAR-10 at NFE 5: {ranked(cifar[5])[:5]}")
    require(ranked(cifar[5])[-1] == "euler" and ranked(cifar[10])[-1] == "heun", "Euler and Heun not last on CIFAR")
    for n in (5, 10):
        require(ranked(ours[n])[-1] == "euler", f"Euler not last on digits-ideal at NFE {n}")
        require(ours[n]["ipndm_v"] > ours[n]["ipndm"] and cifar[n]["ipndm_v"] > cifar[n]["ipndm"],
                f"iPNDM_v does not trail iPNDM at NFE {n}")
    return {}


def diff_sampler_differences() -> Fields:
    table = TABLES[1]
    s = sweep(table.checkpoint)
    ours = {n: {name: s.fid(name, n) for name in table_column(table, 1)} for n in (5, 10)}
    for n in (5, 10):
        require(max(ours[n]["dpmpp_3m"], ours[n]["unipc"]) < min(ours[n]["ipndm"], ours[n]["deis"]),
                f"3M and UniPC do not both beat iPNDM and DEIS at NFE {n}")
        require(ranked(table_column(table, 3 if n == 5 else 4))[0] == "ipndm", f"iPNDM not best on CIFAR at {n}")
    return {"ratio": fixed(ours[5]["dpm2"] / min(ours[5].values()), 1),
            "place": ORDINALS[ranked(ours[10]).index("dpm2")], "dpm2_10": fixed(ours[10]["dpm2"], 3),
            "best_10": fixed(min(ours[10].values()), 3)}


def ideal_tie_at_3() -> Fields:
    s = sweep("digits-ideal")
    (first, a), = [s.best(3, False)]
    second = sorted(s.fids([3], False).items(), key=lambda item: item[1])[1]
    return {"second": second[0][0], "first": first, "second_fid": fixed(second[1], 4), "first_fid": fixed(a, 4)}


CLAIMS = [
    Claim(README, "Deterministic samplers at NFE {deterministic}; stochastic ones at {stochastic}; karras schedule, "
                  "automatic final step, {samples} samples a point (seeds 0..{last_seed}), FID/KID in the shipped "
                  "digits classifier's feature space against the {reference} training digits.", grid),
    Claim(README, "`digits-ideal` (the exact denoiser of the training set): complete, {points} points, {hours} h "
                  "{minutes} min of wall time in all.", digits_ideal_wall),
    Claim(README, "`digits` (the shipped 0.7M-parameter UNet): complete, {points} points (on a machine shared with "
                  "other jobs: {worst} s per NFE of 2,000 images at worst, {best} s at best;", digits_per_nfe),
    Claim(README, "From NFE 20 on every deterministic sampler lands between {low} and {high}: {worst} are the worst "
                  "({worst_20} at NFE 20, {worst_35} at 35), the others stay below {rest_high}", digits_from_20),
    Claim(README, "On the trained network the best from NFE {first} to {last} are {winner}",
          lambda: wins("digits", [6, 8, 10, 15, 20])),
    Claim(README, "fall behind DEIS and DPM-Solver++(2M) at NFE {where}:", third_order_behind),
    Claim(README, "At NFE 3-5 every solver is far from the floor (FID {low}-{high}).",
          lambda: low_nfe_range("digits")),
    Claim(README, "Stochastic at NFE 50: {count} samplers beat the best deterministic one ({deterministic}), "
                  "{best_name} the most ({best}), restart {restart}; the Brownian SDE solvers reach "
                  "{sde_low}-{sde_high}; {worst} is the worst.", digits_stochastic_50),
    Claim(README, "FID of the 297 held-out real digits against the training split, {floor}.", floor_fid),
    Claim(README, "2,000 training images drawn with replacement against the training split: **FID {fid}, KID {kid}**",
          resampling_floor_fields),
    Claim(README, "from NFE 20 on, {count} of the {total} deterministic samplers stay within 0.1 of it (at worst "
                  "{high}); {far} do not (their worst from NFE 20 on); the best reach {best}.", ideal_reaches_floor),
    Claim(README, "Best deterministic sampler at each NFE: {at_3} at 3, {at_4} at 4, {at_5} at 5, {at_6} at 6, "
                  "{at_8} at 8, {at_10} at 10, {at_15} at 15, {at_20} at 20, {at_35} at 35, {at_50} at 50.",
          lambda: best_each("digits-ideal", False)),
    Claim(README, "({second} ties {first} at 3: {second_fid} against {first_fid}.)", ideal_tie_at_3),
    Claim(README, "at NFE 5 the four multistep solvers (3M, UniPC, DEIS, iPNDM) are the best four of these eight on "
                  "digits-ideal and four of the best five on CIFAR-10; Euler is last on digits-ideal at NFE 5 and 10 "
                  "and on CIFAR-10 at NFE 5 (Heun is last there at NFE 10), and iPNDM_v trails iPNDM on both.",
          diff_sampler_agreement),
    Claim(README, "on digits the data-prediction multistep solvers (3M, UniPC) edge out iPNDM and DEIS at NFE 5 and "
                  "10, while iPNDM leads on CIFAR-10; DPM-Solver-2, {ratio}x the best at NFE 5, is {place} at NFE 10 "
                  "({dpm2_10} against {best_10}).", diff_sampler_differences),
    Claim(README, "Best stochastic sampler: {at_10} at NFE 10, {at_20} at 20, {at_50} at 50.",
          lambda: best_each("digits-ideal", True)),
    Claim(README, "{count} of the {of} deterministic samplers that reach both score worse at NFE 4 than at 3 "
                  "(dpmpp_2m {example}). With the karras schedule and a final step to 0, NFE 3 steps through {three}; "
                  "NFE 4 through {four}.", ideal_not_monotone),
    Claim(README, "restart at NFE 10 (FID {fid_10}) spends most of its budget on its restart intervals and is left "
                  "with too few main steps; at NFE 20 it scores {fid_20} (the best stochastic sampler: {best_20}).",
          restart_low_nfe),
]
