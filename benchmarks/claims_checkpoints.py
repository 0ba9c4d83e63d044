"""The claims of results/sweeps/README.md about digits-flow, digits-latent and the digits-edm subset
(benchmarks/check_claims.py)."""

from __future__ import annotations

from collections.abc import Callable

from claims_core import Claim, Fields, Table, best_each, fixed, names, ranked, require, sweep

import samplerzoo as sz

README = "results/sweeps/README.md"
FLOW, LATENT, LATENT_CFG, EDM = "digits-flow", "digits-latent", "digits-latent-cfg1.5", "digits-edm"
COMPARED = ("euler", "heun", "dpmpp_2m", "dpmpp_3m", "deis", "unipc")
"""The solvers of the digits-edm subset, ranked on all three pixel checkpoints."""

TABLES = [
    Table(README, "| solver (digits-flow) | 3 | 4 | 5 | 6 | 8 | 10 | 20 | 50 |", FLOW,
          {1: 3, 2: 4, 3: 5, 4: 6, 5: 8, 6: 10, 7: 20, 8: 50}),
    Table(README, "| solver (digits-latent, no guidance) | 3 | 5 | 8 | 10 | 20 | 50 |", LATENT,
          {1: 3, 2: 5, 3: 8, 4: 10, 5: 20, 6: 50}),
    Table(README, "| solver (digits-latent, CFG 1.5) | 3 | 5 | 8 | 10 | 20 | 50 |", LATENT_CFG,
          {1: 3, 2: 5, 3: 8, 4: 10, 5: 20, 6: 50}),
]


def built_in(name: str) -> bool:
    return sz.get_sampler(name).plugin == "samplerzoo"


def flow_at_3() -> Fields:
    """At NFE 3 a solver whose steps take one call each is DDIM on a flow model: the step from infinity, one
    first-order step (no history yet) and a last step that returns D."""
    s = sweep(FLOW)
    at = {name: v for (name, _), v in s.fids([3], False).items() if built_in(name)}
    ddim = s.fid("ddim", 3)
    same = [name for name, v in at.items() if abs(v - ddim) < 5e-3]
    others = {name: v for name, v in at.items() if name not in same}
    def listed(keep: Callable[[float], bool]) -> str:
        return names(f"{name} {fixed(others[name], 2)}" for name in ranked(others) if keep(others[name]))

    return {"count": str(len(same)), "total": str(len(at)), "fid": fixed(ddim, 2),
            "better": listed(lambda v: v < ddim), "worse": listed(lambda v: v > ddim)}


def flow_from_20() -> Fields:
    s = sweep(FLOW)
    later = {k: v for k, v in s.fids([n for n in s.nfes(False) if n >= 20], False).items() if built_in(k[0])}
    worst = max(later, key=later.__getitem__)
    rest = [v for (name, _), v in later.items() if name not in ("dpmpp_3m", "unipc")]
    return {"low": fixed(min(later.values()), 3), "high": fixed(max(later.values()), 3),
            "worst": f"{worst[0]} at NFE {worst[1]}", "rest_high": fixed(max(rest), 3),
            "floor": fixed(s.ok[0]["floor"]["fid"], 3)}


def flow_third_order() -> Fields:
    s = sweep(FLOW)
    require(s.fid("dpmpp_3m", 5) > 5 * s.best(5, False)[1], "dpmpp_3m is not far behind at NFE 5")
    return {"m3_5": fixed(s.fid("dpmpp_3m", 5), 1), "m3_8": fixed(s.fid("dpmpp_3m", 8), 1),
            "unipc_8": fixed(s.fid("unipc", 8), 1), "bh2_8": fixed(s.fid("unipc_bh2", 8), 2),
            "best_5": fixed(s.best(5, False)[1], 2), "best_8": fixed(s.best(8, False)[1], 2)}


def flow_heun_in_t() -> Fields:
    s = sweep(FLOW)
    return {f"{name}_{n}": fixed(s.fid(name, n), 3) for name in ("flow_heun", "heun") for n in (4, 6, 10)}


def twins() -> Fields:
    """Pairs that give the same FID at every NFE of the flow sweep (to 2e-3)."""
    s = sweep(FLOW)
    for a, b in (("lms", "ipndm_v"), ("dpm_solver", "dpm2"), ("edm_ablation", "heun"), ("euler", "ddim")):
        nfes = [n for n in s.nfes(False) if (a, n) in s.fids([n], False) and (b, n) in s.fids([n], False)]
        require(all(abs(s.fid(a, n) - s.fid(b, n)) < 2e-3 for n in nfes), f"{a} and {b} differ on {FLOW}")
    return {}


def ranking(checkpoint: str, nfe: int) -> str:
    s = sweep(checkpoint)
    return " < ".join(ranked({name: s.fid(name, nfe) for name in COMPARED}))


def three_checkpoints() -> Fields:
    return {f"{key}_{n}": ranking(name, n) for key, name in (("vp", "digits"), ("edm", EDM), ("flow", FLOW))
            for n in (5, 10)}


def across_checkpoints() -> Fields:
    order = {(name, n): ranked({s: sweep(name).fid(s, n) for s in COMPARED})
             for name in ("digits", EDM, FLOW) for n in (5, 10)}
    require(all({"deis", "dpmpp_2m"} <= set(order[name, 10][:3]) for name in ("digits", EDM, FLOW)),
            "DEIS and 2M are not in the best three at NFE 10 everywhere")
    require(order[FLOW, 5][0] == order[FLOW, 10][0] == "heun" and all(order[name, n][0] != "heun"
            for name in ("digits", EDM) for n in (5, 10)), "Heun does not lead on digits-flow alone")
    require(all(set(order[name, 10][-2:]) == {"dpmpp_3m", "unipc"} for name in (EDM, FLOW)),
            "3M and UniPC are not the last two at NFE 10 on digits-edm and digits-flow")
    return {}


def flow_stochastic_50() -> Fields:
    s = sweep(FLOW)
    deterministic = min(v for (name, _), v in s.fids([50], False).items() if built_in(name))
    at = {name: v for (name, _), v in s.fids([50], True).items() if built_in(name)}
    better = ranked({name: v for name, v in at.items() if v < deterministic})
    return {"count": str(len(better)), "total": str(len(at)), "deterministic": fixed(deterministic, 3),
            "better": names(f"{name} ({fixed(at[name], 3)})" for name in better)}


def flow_stochastic_worse() -> Fields:
    s = sweep(FLOW)
    both = [name for (name, _), _ in s.fids([20], True).items() if (name, 50) in s.fids([50], True) and built_in(name)]
    worse = [name for name in both if s.fid(name, 50) > s.fid(name, 20)]
    return {"worse": str(len(worse)), "total": str(len(both)), "ea20": fixed(s.fid("euler_ancestral", 20), 3),
            "ea50": fixed(s.fid("euler_ancestral", 50), 3)}


def latent_guidance() -> Fields:
    plain, guided = sweep(LATENT), sweep(LATENT_CFG)
    shared = [name for (name, _), _ in plain.fids([20], False).items() if (name, 20) in guided.fids([20], False)]
    gains = [plain.fid(name, 20) - guided.fid(name, 20) for name in shared]
    require(all(g > 0 for g in gains), "guidance does not lower every sampler's FID at NFE 20")
    return {"count": str(len(shared)), "low": fixed(min(gains), 2), "high": fixed(max(gains), 2),
            "plain_best": f"{plain.best(20, False)[0]} ({fixed(plain.best(20, False)[1], 3)})",
            "guided_best": f"{guided.best(20, False)[0]} ({fixed(guided.best(20, False)[1], 3)})",
            "floor": fixed(plain.ok[0]["floor"]["fid"], 3)}


def latent_low_and_high() -> Fields:
    s = sweep(LATENT)
    at_3 = {name: v for (name, _), v in s.fids([3], False).items() if name not in ("ddim", "euler")}
    later = s.fids([n for n in s.nfes(False) if n >= 20], False)
    require(s.best(3, False)[0] in ("ddim", "euler"), "a solver other than DDIM / Euler is best at NFE 3")
    return {"fid_3": fixed(s.fid("ddim", 3), 2), "low_3": fixed(min(at_3.values()), 1),
            "high_3": fixed(max(at_3.values()), 1), "low": fixed(min(later.values()), 2),
            "high": fixed(max(later.values()), 2)}


def latent_cost() -> Fields:
    guided = sweep(LATENT_CFG).ok
    require(all(r["forwards"] == 2 * r["counted_nfe"] for r in guided), "a guided call does not cost 2 forwards")
    return {"points": str(len(sweep(LATENT).rows)), "guided_points": str(len(sweep(LATENT_CFG).rows))}


CLAIMS = [
    Claim(README, "At NFE 3 {count} of the {total} built-in deterministic solvers score {fid}, DDIM's figure; the "
                  "others: {better} better, {worse} worse.", flow_at_3),
    Claim(README, "Best deterministic sampler on digits-flow at each NFE: {at_3} at 3, {at_4} at 4, {at_5} at 5, "
                  "{at_6} at 6, {at_8} at 8, {at_10} at 10, {at_15} at 15, {at_20} at 20, {at_35} at 35, {at_50} at "
                  "50.",
          lambda: best_each(FLOW, False)),
    Claim(README, "From NFE 20 on every built-in deterministic solver lands between {low} and {high} (the worst: "
                  "{worst}); all but dpmpp_3m and unipc stay below {rest_high} (the resampled floor: {floor}).",
          flow_from_20),
    Claim(README, "dpmpp_3m scores {m3_5} at NFE 5 and {m3_8} at NFE 8, unipc {unipc_8} at NFE 8 (unipc_bh2 {bh2_8}), "
                  "against {best_5} and {best_8} for the best", flow_third_order),
    Claim(README, "flow_heun (Heun in t) against heun (in sigma): {flow_heun_4} / {heun_4} at NFE 4, {flow_heun_6} / "
                  "{heun_6} at 6, {flow_heun_10} / {heun_10} at 10.", flow_heun_in_t),
    Claim(README, "lms and ipndm_v, dpm_solver and dpm2, edm_ablation and heun, euler and ddim give the same FID at "
                  "every NFE.", twins),
    Claim(README, "NFE 5: digits {vp_5}; digits-edm {edm_5}; digits-flow {flow_5}. NFE 10: digits {vp_10}; digits-edm "
                  "{edm_10}; digits-flow {flow_10}.", three_checkpoints),
    Claim(README, "DEIS and DPM-Solver++(2M) are in the best three at NFE 10 on all three checkpoints; Heun leads on "
                  "digits-flow at NFE 5 and 10 and on neither of the others; UniPC and DPM-Solver++(3M) are the last "
                  "two at NFE 10 on digits-edm and digits-flow.", across_checkpoints),
    Claim(README, "on the flow model {worse} of the {total} built-in stochastic samplers measured at both score worse "
                  "at NFE 50 than at 20 (euler_ancestral {ea20} -> {ea50}).", flow_stochastic_worse),
    Claim(README, "Best stochastic sampler on digits-flow: {at_10} at NFE 10, {at_20} at 20, {at_50} at 50.",
          lambda: best_each(FLOW, True)),
    Claim(README, "At NFE 50 {count} of the {total} built-in stochastic samplers beat the best deterministic one "
                  "({deterministic}): {better}.", flow_stochastic_50),
    Claim(README, "Best deterministic sampler without guidance: {at_3} at 3, {at_5} at 5, {at_8} at 8, {at_10} at 10, "
                  "{at_20} at 20, {at_50} at 50.", lambda: best_each(LATENT, False)),
    Claim(README, "Best deterministic sampler with guidance: {at_3} at 3, {at_5} at 5, {at_8} at 8, {at_10} at 10, "
                  "{at_20} at 20, {at_50} at 50.", lambda: best_each(LATENT_CFG, False)),
    Claim(README, "Without guidance DDIM and Euler are the best at NFE 3 ({fid_3}; the others {low_3}-{high_3}), and "
                  "from NFE 20 on every deterministic sampler lands between {low} and {high}", latent_low_and_high),
    Claim(README, "Guidance at scale 1.5 lowers the FID of all {count} deterministic samplers at NFE 20, by {low} to "
                  "{high}; the best at NFE 20 is {plain_best} without guidance and {guided_best} with it (the "
                  "1,000-sample resampled floor: {floor}).", latent_guidance),
    Claim(README, "`digits-latent`: {points} points without guidance and {guided_points} with it.", latent_cost),
]
