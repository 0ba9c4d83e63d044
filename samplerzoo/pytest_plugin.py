"""pytest plugin (entry point ``pytest11``): the conformance kit as a fixture and a marker.

- ``@pytest.mark.samplerzoo_plugin("NAME")`` parametrizes a test's ``samplerzoo_sampler`` argument over the
  samplers that the samplerzoo plugin ``NAME`` (its entry-point name) registers; without the marker, over every
  registered sampler. Collection fails with one line if the plugin is missing or reported errors.
- The ``sampler_conformance`` fixture is :func:`samplerzoo.conformance.check_sampler`.

pytest loads this module in every run in the environment, so it imports nothing but pytest until a test asks
for one of the two; disable it with ``-p no:samplerzoo``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

MARKER = "samplerzoo_plugin"
ARGUMENT = "samplerzoo_sampler"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(name): parametrize `{ARGUMENT}` over the samplers that the "
                                       "samplerzoo plugin `name` registers")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if ARGUMENT not in metafunc.fixturenames:
        return
    from .conformance import plugin_samplers
    from .plugins import get_samplers

    marker = metafunc.definition.get_closest_marker(MARKER)
    try:
        names = plugin_samplers(*marker.args) if marker else sorted(get_samplers())
    except AssertionError as exc:
        failure = str(exc)
    else:
        metafunc.parametrize(ARGUMENT, names)
        return
    pytest.fail(failure, pytrace=False)  # outside the except block: one line, no chained traceback


@pytest.fixture
def sampler_conformance() -> Callable[..., list[str]]:
    """``sampler_conformance(name_or_spec, reference=None, **options)``: run every conformance check that applies."""
    from .conformance import check_sampler

    return check_sampler
