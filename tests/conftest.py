"""Shared pytest configuration: the ``--slow`` option and the hypothesis profiles.

* Tests marked ``@pytest.mark.slow`` are skipped unless ``--slow`` is given.
* Hypothesis runs a small, derandomized budget by default (``default`` profile: stable in CI,
  a few hundred examples across the fuzz tests); ``--slow`` switches to the ``slow`` profile,
  which draws fresh random examples and many more of them.
"""

from __future__ import annotations

import os

import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a test extra; only the fuzz tests need it
    settings = None

DEFAULT_EXAMPLES = 12
SLOW_EXAMPLES = 400

if settings is not None:
    _common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture],
        print_blob=True,
    )
    settings.register_profile("default", max_examples=DEFAULT_EXAMPLES, derandomize=True,
                              database=None, **_common)
    settings.register_profile("slow", max_examples=SLOW_EXAMPLES, **_common)
    settings.load_profile(os.environ.get("DENSEPROP_HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run tests marked slow, and hypothesis with many more examples")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running fuzz and soak tests (run with --slow)")
    if settings is not None and config.getoption("--slow"):
        settings.load_profile("slow")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow test: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
