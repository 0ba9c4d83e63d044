"""benchmarks/mutants.py's list stays applicable: a refactor that moves a mutant's text makes it 'not applicable'
(reported, never run), so the mutation score silently covers less. Each mutant must still apply, exactly once, to
the current tree, change something, carry a unique name and name test files that exist."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_mutants() -> ModuleType:
    spec = importlib.util.spec_from_file_location("samplerzoo_benchmarks_mutants", ROOT / "benchmarks" / "mutants.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


MUTANTS = load_mutants().MUTANTS


def test_names_are_unique() -> None:
    repeated = [name for name, count in Counter(m.name for m in MUTANTS).items() if count > 1]
    assert not repeated, f"mutant names used twice: {repeated}"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_applies_once_and_changes_the_code(mutant: object) -> None:
    target = ROOT / mutant.path
    assert target.is_file(), f"{mutant.name}: {mutant.path} does not exist"
    count = target.read_text().count(mutant.old)
    assert count == 1, f"{mutant.name}: its text occurs {count} times in {mutant.path}, not once"
    assert mutant.old != mutant.new, f"{mutant.name}: old and new are the same"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_names_tests_that_exist(mutant: object) -> None:
    assert mutant.invocations(), f"{mutant.name}: runs no tests"
    missing = [name for args in mutant.invocations() for name in args
               if name.startswith("tests/") and not (ROOT / name.split("::")[0]).is_file()]
    assert not missing, f"{mutant.name}: no such test file {missing}"
