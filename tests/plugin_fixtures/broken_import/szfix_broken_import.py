"""Fixture plugin: its import fails (a missing dependency), so it must be skipped and reported."""

import samplerzoo_no_such_dependency  # noqa: F401
