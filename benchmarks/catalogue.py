"""results/catalogue.md: every registered sampler and schedule with its paper, the names ComfyUI, diffusers,
k-diffusion and diff-sampler give it, and how the test suite verifies it; then the peers' names samplerzoo lacks.

Generated from the registry (names, aliases, ``paper``, ``reference``), the peers' name lists below (facts read from
their sources) and the tests that name each entry. Rerun after registering anything:

    python benchmarks/catalogue.py            # writes results/catalogue.md
    python benchmarks/catalogue.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

import samplerzoo as sz
from samplerzoo.registry import SamplerSpec, ScheduleSpec

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "results" / "catalogue.md"
K_SAMPLER = r"k_diffusion\.sampling\.(sample_\w+)"
K_SCHEDULE = r"k_diffusion\.(?:sampling\.)?([\w.]*get_sigmas\w*)"

COMFYUI_SAMPLERS = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2", "dpm_2",
    "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm",
    "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
    "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp", "er_sde", "seeds_2",
    "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc", "uni_pc_bh2")
"""ComfyUI's sampler names: comfy/samplers.py KSAMPLER_NAMES + SAMPLER_NAMES' ddim, uni_pc, uni_pc_bh2."""
COMFYUI_SCHEDULES = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                     "linear_quadratic", "kl_optimal", "AlignYourStepsScheduler:ays", "LaplaceScheduler:laplace",
                     "PolyexponentialScheduler:polyexponential", "VPScheduler:vp", "GITSScheduler:gits",
                     "SDTurboScheduler:sd_turbo", "OptimalStepsScheduler:optimal_steps")
"""ComfyUI's scheduler names (comfy/samplers.py SCHEDULER_HANDLERS) and its schedule nodes (comfy_extras), NODE:ours
where the node computes one of our schedules. GITS' and OptimalSteps' nodes are their papers' fixed tables (``gits``,
``optimal_steps``); ``zoo tune --method gits|oss`` runs those searches for any checkpoint."""
DIFFUSERS_SCHEDULES = ("timestep_spacing='linspace':linspace", "timestep_spacing='leading':leading",
                       "timestep_spacing='trailing':trailing", "use_karras_sigmas:karras",
                       "use_exponential_sigmas:exponential", "use_beta_sigmas:beta_sigmas", "AysSchedules:ays")
"""diffusers' schedule options (scheduler configs) and its Align Your Steps tables, OPTION:ours."""
DIFF_SAMPLER_SOLVERS = ("euler", "heun", "dpm:dpm2", "dpmpp:dpmpp_2m", "ipndm", "ipndm_v", "deis", "unipc", "amed")
"""diff-sampler's --solver names (diff-solvers-main/sample.py; amed-solver), NAME:ours where ours differs."""
DIFF_SAMPLER_SCHEDULES = ("polynomial:karras", "logsnr:exponential", "time_uniform:vp", "discrete", "gits:file")
"""diff-sampler's --schedule_type names (diff-solvers-main/solver_utils.py get_schedule) and its GITS (gits-main), a
search for a solver's time steps: ``zoo tune --method gits`` writes them as a schedule file (``file:PATH``)."""


def resolve(entries: Iterable[str], lookup: dict[str, str]) -> tuple[dict[str, list[str]], list[str]]:
    """Peer names per samplerzoo name (``PEER:ours`` or a name/alias we register), and the peer names we lack."""
    found: dict[str, list[str]] = {}
    missing = []
    for entry in entries:
        peer, _, ours = entry.partition(":")
        name = lookup.get(ours or peer)
        if name is None:
            missing.append(peer)
        else:
            found.setdefault(name, []).append(peer)
    return found, missing


def lookup_table(specs: Iterable[SamplerSpec | ScheduleSpec]) -> dict[str, str]:
    return {alias: spec.name for spec in specs for alias in (spec.name, *spec.aliases)}


def test_mentions(names: Iterable[str]) -> dict[str, list[str]]:
    """For each name, the test files (tests/, plugins/*/tests/) that quote it (``"name"``, ``"name:..."``) or call
    the function of that name."""
    files = sorted([*ROOT.glob("tests/test_*.py"), *ROOT.glob("plugins/*/tests/test_*.py")])
    texts = {path.relative_to(ROOT).as_posix(): path.read_text() for path in files}
    return {name: [file for file, text in texts.items()
                   if re.search(rf"[\"']{re.escape(name)}[\"':]|(?<![\w.]){re.escape(name)}\(", text)]
            for name in names}


def references(spec: SamplerSpec | ScheduleSpec, pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, spec.reference)))


def cell(values: Iterable[str]) -> str:
    text = ", ".join(f"`{v}`" for v in values)
    return text or "-"


def verified(spec: SamplerSpec, tests: list[str]) -> str:
    """What the default test run checks, from the registration and the tests that name the sampler."""
    if spec.plugin != "samplerzoo":
        parts = [f"plugin {spec.plugin}: the kit in its own tests"]
    elif spec.adaptive:
        parts = ["kit: determinism or seeding, batch invariance (adaptive: counted NFE only)"]
    elif spec.stochastic:
        parts = ["kit: exact NFE, seeded, batch invariance"]
    else:
        parts = [f"kit: exact NFE, batch invariance, order {spec.convergence_order} on Gaussian and mixture"]
    if spec.kit_options:
        parts[0] += " (with " + ", ".join(f"{k}={v}" for k, v in spec.kit_options.items()) + ")"
    if references(spec, K_SAMPLER) and spec.plugin == "samplerzoo":
        parts.append("k-diffusion agreement")
    if tests:
        parts.append("named in " + ", ".join(Path(t).stem.removeprefix("test_") for t in tests))
    return "; ".join(parts)


def sampler_table(samplers: list[SamplerSpec]) -> tuple[list[str], list[str], list[str]]:
    lookup = lookup_table(samplers)
    comfy, comfy_missing = resolve(COMFYUI_SAMPLERS, lookup)
    diff, diff_missing = resolve(DIFF_SAMPLER_SOLVERS, lookup)
    mentions = test_mentions(lookup)
    lines = ["| sampler | aliases | paper | ComfyUI | diffusers | k-diffusion | diff-sampler | verified |",
             "|---|---|---|---|---|---|---|---|"]
    for spec in samplers:
        tests = sorted({t for alias in (spec.name, *spec.aliases) for t in mentions[alias]})
        diffusers = sorted({a for a in spec.aliases if a.endswith("Scheduler")}
                           | set(references(spec, r"diffusers\.(\w+Scheduler)")))
        lines.append(f"| `{spec.name}` | {cell(spec.aliases)} | {spec.paper or '-'} | {cell(comfy.get(spec.name, []))} "
                     f"| {cell(diffusers)} | {cell(references(spec, K_SAMPLER))} "
                     f"| {cell(diff.get(spec.name, []))} | {verified(spec, tests)} |")
    return lines, comfy_missing, diff_missing


def schedule_table(schedules: list[ScheduleSpec]) -> tuple[list[str], list[str], list[str]]:
    lookup = lookup_table(schedules)
    comfy, comfy_missing = resolve(COMFYUI_SCHEDULES, lookup)
    diffusers, diffusers_missing = resolve(DIFFUSERS_SCHEDULES, lookup)
    diff, diff_missing = resolve(DIFF_SAMPLER_SCHEDULES, lookup)
    mentions = test_mentions(lookup)
    lines = ["| schedule | aliases | paper | ComfyUI | diffusers | k-diffusion | diff-sampler | checked against | "
             "tests |", "|---|---|---|---|---|---|---|---|---|"]
    for spec in schedules:
        tests = sorted({Path(t).stem.removeprefix("test_") for a in (spec.name, *spec.aliases) for t in mentions[a]})
        k_names = references(spec, K_SCHEDULE)
        lines.append(f"| `{spec.name}` | {cell(spec.aliases)} | {spec.paper or spec.description} | "
                     f"{cell(comfy.get(spec.name, []))} | {cell(diffusers.get(spec.name, []))} | {cell(k_names)} | "
                     f"{cell(diff.get(spec.name, []))} | {spec.reference or '-'} | {', '.join(tests) or '-'} |")
    return lines, comfy_missing, diffusers_missing + diff_missing


def family_table() -> list[str]:
    """The diffusers pipeline families sz.load takes, and the test files that name each pipeline class."""
    from samplerzoo.checkpoints.families import builtin_families

    files = sorted(ROOT.glob("tests/test_*.py"))
    texts = {path.stem.removeprefix("test_"): path.read_text() for path in files}
    lines = ["| family | diffusers pipelines | what it is | tests naming its pipelines |", "|---|---|---|---|"]
    for family in builtin_families():
        tests = [name for name, text in texts.items()
                 if any(re.search(rf"\b{re.escape(pipeline)}\b", text) for pipeline in family.pipelines)]
        lines.append(f"| `{family.name}` | {cell(family.pipelines)} | {family.description} | "
                     f"{', '.join(tests) or '-'} |")
    return lines


def guidance_table() -> list[str]:
    """The registered guidance rules, the space each acts in by default, and its references."""
    lines = ["| rule | aliases | paper | space | checked against |", "|---|---|---|---|---|"]
    for spec in sorted(sz.get_guidances().values(), key=lambda s: s.name):
        lines.append(f"| `{spec.name}` | {cell(spec.aliases)} | {spec.paper} | {spec.space} | {spec.reference} |")
    return lines


def render() -> str:
    samplers = sorted(sz.get_samplers().values(), key=lambda s: s.name)
    schedules = sorted(sz.get_schedules().values(), key=lambda s: s.name)
    sampler_lines, comfy_samplers, diff_solvers = sampler_table(samplers)
    schedule_lines, comfy_schedules, other_schedules = schedule_table(schedules)
    aliases = sum(len(s.aliases) for s in samplers)
    return "\n".join([
        "# Catalogue", "",
        "Generated by `python benchmarks/catalogue.py` from the registry, the peers' name lists in that script and "
        "the tests that name each entry; do not edit by hand.", "",
        f"## {len(samplers)} samplers ({aliases} aliases not counted)", "",
        "`kit` is the conformance checks every registered sampler passes in the default run (tests/test_samplers.py: "
        "exact NFE accounting and budget, batch invariance, determinism or seeding, convergence order on exact "
        "Gaussian and mixture problems); `k-diffusion agreement` is tests/test_reference_agreement.py's step-by-step "
        "comparison with the k-diffusion function named.", "", *sampler_lines, "",
        f"## {len(schedules)} schedules", "", *schedule_lines, "",
        "## Pipeline families", "",
        "A diffusers pipeline directory (or hub id) loads through the family its `model_index.json` names "
        "(samplerzoo/checkpoints/families/). The tests named build a tiny random pipeline of the family and sample it "
        "with ours and with diffusers' own pipeline, except unet2d's DDPM / DDIM / PNDM layouts, whose denoiser is "
        "checked directly (tests/test_checkpoints.py) and whose schedulers' steps are "
        "tests/test_diffusers_agreement.py's.",
        "", *family_table(), "",
        "## Guidance rules", "",
        "How classifier-free guidance combines its two predictions (`--guidance`, samplerzoo/guidance_rules.py); "
        "every rule also takes `rescale` (Lin et al. 2024) and `space`. tests/test_guidance_rules.py compares each "
        "with the diffusers guider named, and `cfg` with rescale with StableDiffusionPipeline's guidance_rescale.",
        "", *guidance_table(), "",
        "## Peers' names without a samplerzoo entry", "",
        f"- ComfyUI samplers: {cell(comfy_samplers)}",
        f"- diff-sampler solvers: {cell(diff_solvers)}",
        f"- ComfyUI schedules: {cell(comfy_schedules)}",
        f"- diffusers / diff-sampler schedules: {cell(other_schedules)}", ""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true", help="only compare with --out; exit 1 if it differs")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not args.out.is_file() or args.out.read_text() != text:
            sys.exit(f"{args.out} is stale: run python benchmarks/catalogue.py")
        return
    args.out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
