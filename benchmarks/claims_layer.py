"""The claims and tables of results/additional-layer.md (benchmarks/check_claims.py)."""

from __future__ import annotations

import json
from functools import cache

from claims_core import ROOT, Claim, Fields, RowTable, fixed, require

LAYER = "results/additional-layer.md"


@cache
def layer_rows(name: str) -> tuple[dict, ...]:
    return tuple(json.loads((ROOT / "results" / "additional-layer" / name).read_text())["rows"])


@cache
def layer_training(path: str) -> dict:
    return json.loads((ROOT / path).read_text())


def layer_pairs() -> list[list[dict]]:
    rows = layer_rows("bench-seed2000.json")
    return [list(rows[i:i + 2]) for i in range(0, len(rows), 2)]


def held_out() -> list[list[dict]]:
    shipped = layer_training("plugins/additional_layer/samplerzoo_additional_layer/weights/training.json")["held_out"]
    ablation = layer_training("results/additional-layer/layer-min-sigma-5/training.json")["held_out"]
    return [[shipped["frozen model"]], [shipped["layer"]], [ablation["layer"]]]


ROW_TABLES = [
    RowTable(LAYER, "| variant | steps | NFE / sample | network rows / image |",
             lambda: [[row] for row in layer_rows("bench.json")],
             {1: "steps", 2: "nfe_per_sample", 3: "network_rows_per_image", 4: "cpu_seconds", 5: "wall_seconds",
              6: "images_per_cpu_second", 7: "fid", 8: "kid", 9: "is", 10: "class_hit", 11: "nn_median", 12: "twins"}),
    RowTable(LAYER, "| variant | steps | CPU s | wall s | FID |", layer_pairs,
             {1: "steps", 2: "cpu_seconds", 3: "wall_seconds", 4: "fid", 5: "kid", 6: "is", 7: "class_hit",
              8: "twins"}),
    RowTable(LAYER, "| unweighted v MSE |", held_out, {1: "v mse, sigma >= 5", 2: "v mse, 1 <= sigma < 5",
                                                       3: "v mse, sigma < 1", 4: "weighted loss"}, bold=True),
]


def by_label(prefix: str, steps: int, name: str = "bench.json") -> dict:
    return next(r for r in layer_rows(name) if r["label"].startswith(prefix) and r["steps"] == steps)


DDIM, V1, V2_TEXT, V2_CODE = "DDIM, frozen", "v1: DDIM", "v2: fan-out, v + 0.01", "v2: fan-out, v + v u"


def v1_against_ddim() -> Fields:
    for name in ("bench.json", "bench-seed2000.json"):
        for row in (r for r in layer_rows(name) if r["label"].startswith(V1)):
            ddim = by_label(DDIM, row["steps"], name)
            require(row["fid"] > ddim["fid"] and row["kid"] > ddim["kid"], f"v1 not worse at {row['steps']} steps")
    pairs = [(by_label(V1, n)["fid"], by_label(DDIM, n)["fid"]) for n in (5, 10, 50)]
    hits = [r["class_hit"] for r in layer_rows("bench.json") if r["label"].startswith(V1)]
    return {"at_5": " vs ".join(fixed(v, 2) for v in pairs[0]), "at_10": " vs ".join(fixed(v, 2) for v in pairs[1]),
            "at_50": " vs ".join(fixed(v, 2) for v in pairs[2]), "hit_low": str(round(100 * min(hits))),
            "hit_high": str(round(100 * max(hits)))}


def conditional_model() -> Fields:
    rows = [r for r in layer_rows("bench.json") if r["label"].startswith("DDIM, class-conditional") and r["steps"] >= 5]
    return {"low": str(round(100 * min(r["class_hit"] for r in rows))),
            "high": str(round(100 * max(r["class_hit"] for r in rows))),
            "fid": fixed(by_label("DDIM, class-conditional", 5)["fid"], 2), "ddim": fixed(by_label(DDIM, 5)["fid"], 2)}


def v2_speed() -> Fields:
    v2, ddim = by_label(V2_TEXT, 5), by_label(DDIM, 5)
    at_10 = [by_label(v, 10)["images_per_cpu_second"] / by_label(DDIM, 10)["images_per_cpu_second"]
             for v in (V2_TEXT, V2_CODE)]
    at_10 += [by_label(DDIM, 10, "bench-seed2000.json")["cpu_seconds"] / by_label(v, 10, "bench-seed2000.json")[
        "cpu_seconds"] for v in (V2_TEXT, V2_CODE)]
    return {"gain": fixed(v2["images_per_cpu_second"] / ddim["images_per_cpu_second"], 1),
            "v2": fixed(v2["images_per_cpu_second"], 0), "ddim": fixed(ddim["images_per_cpu_second"], 0),
            "rows": fixed(v2["network_rows_per_image"], 2), "low_10": fixed(min(at_10), 1),
            "high_10": fixed(max(at_10), 1), "rows_50": fixed(by_label(V2_TEXT, 50)["network_rows_per_image"], 1)}


def v2_duplicates() -> Fields:
    v2 = [r for r in layer_rows("bench.json") if r["label"].startswith(("v2: fan-out",)) and r["steps"] >= 5]
    ddim = [r for r in layer_rows("bench.json") if r["label"].startswith(DDIM) and r["steps"] >= 5]
    text, code = ([r["nn_median"] for r in v2 if r["label"].startswith(v) and r["steps"] <= 10]
                  for v in (V2_TEXT, V2_CODE))
    return {"twins": fixed(100 * min(r["twins"] for r in v2), 1), "nn_low": fixed(min(text), 3),
            "nn_high": fixed(max(text), 3), "code_low": fixed(min(code), 3), "code_high": fixed(max(code), 3),
            "ddim_nn_low": fixed(min(r["nn_median"] for r in ddim if r["steps"] <= 10), 1),
            "ddim_nn_high": fixed(max(r["nn_median"] for r in ddim if r["steps"] <= 10), 1),
            "fid_low": fixed(min(r["fid"] for r in v2), 0), "fid_high": fixed(max(r["fid"] for r in v2), 0),
            "kid": fixed(sum(r["kid"] for r in v2) / len(v2), 1),
            "ddim_fid_low": fixed(min(r["fid"] for r in ddim), 1),
            "ddim_fid_high": fixed(max(r["fid"] for r in ddim), 1), "ddim_kid": fixed(max(r["kid"] for r in ddim), 3)}


def cost_matched() -> Fields:
    return {"ddim_3": fixed(by_label(DDIM, 3)["fid"], 1), "v2_5": fixed(by_label(V2_TEXT, 5)["fid"], 1),
            "ddim_5": fixed(by_label(DDIM, 5)["fid"], 1), "v2_10": fixed(by_label(V2_TEXT, 10)["fid"], 1),
            "rows_10": fixed(by_label(V2_TEXT, 10)["network_rows_per_image"], 1)}


def v2_inception() -> Fields:
    v2 = [r["is"] for r in layer_rows("bench.json") if r["label"].startswith("v2: fan-out") and r["steps"] >= 5]
    return {"low": fixed(min(v2), 1), "high": fixed(max(v2), 1),
            "code": fixed(by_label(V2_CODE, 3)["twins"], 2), "text": fixed(by_label(V2_TEXT, 3)["twins"], 2)}


def ablation() -> Fields:
    rows = [r for r in layer_rows("bench.json") if "min-sigma-5" in r["label"]]
    v2 = [r["fid"] for r in rows if r["label"].startswith("v2") and r["steps"] >= 5]
    hits = [r["class_hit"] for r in rows]
    return {"hit_low": fixed(min(hits), 2), "hit_high": fixed(max(hits), 2),
            "fid_low": fixed(min(v2), 1), "fid_high": fixed(max(v2), 1)}


def layer_training_run() -> Fields:
    record = layer_training("plugins/additional_layer/samplerzoo_additional_layer/weights/training.json")
    return {"seconds": fixed(record["seconds"], 0), "final": fixed(record["final_loss"], 3),
            "parameters": f"{record['parameters']:,}"}


CLAIMS = [
    Claim(LAYER, "It is worse than DDIM on FID and KID at every step count, in both seed sets (FID {at_5} at 5 steps, "
                 "{at_10} at 10, {at_50} at 50)", v1_against_ddim),
    Claim(LAYER, "It hardly directs anything: {hit_low} to {hit_high}% of samples land in their assigned class",
          v1_against_ddim),
    Claim(LAYER, "the class-conditional model reaches a class hit of {low} to {high}%, and its FID at 5 steps is {fid} "
                 "against {ddim}.", conditional_model),
    Claim(LAYER, "At 5 steps it makes {gain}x more images per CPU-second than DDIM ({v2} vs {ddim}; the row count "
                 "predicts 5 / {rows} = 1.9x). At 10 steps the gain is {low_10} to {high_10}x, and at 50 steps none "
                 "({rows_50} vs 50 rows).", v2_speed),
    Claim(LAYER, "one image: at least {twins}% of samples have a twin within 0.5 (from 5 steps on), the median "
                 "nearest-neighbour distance at 5 and 10 steps is {nn_low} to {nn_high} ({code_low} to {code_high} "
                 "with the code's perturbation) against {ddim_nn_low} to {ddim_nn_high} for DDIM", v2_duplicates),
    Claim(LAYER, "FID is {fid_low} to {fid_high} and KID about {kid}, against {ddim_fid_low} to {ddim_fid_high} and at "
                 "most {ddim_kid} for DDIM at 5 to 50 steps.", v2_duplicates),
    Claim(LAYER, "DDIM at 3 steps (3 rows per image) has FID {ddim_3} against v2's {v2_5} at 5 steps (2.61 rows), "
                 "with no twins. DDIM at 5 steps (5 rows) has FID {ddim_5} against v2's {v2_10} at 10 steps "
                 "({rows_10} rows).", cost_matched),
    Claim(LAYER, "v2's IS is {low} to {high}:", v2_inception),
    Claim(LAYER, "adds a little diversity at 3 steps (twins {code} vs {text})", v2_inception),
    Claim(LAYER, "directs slightly more: class hit {hit_low} to {hit_high}. It improves v2's FID ({fid_low} to "
                 "{fid_high})", ablation),
    Claim(LAYER, "It took {seconds} s.", layer_training_run),
    Claim(LAYER, "It has {parameters} parameters", layer_training_run),
]
