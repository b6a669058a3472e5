"""The one way a metric says it cannot be computed."""

from __future__ import annotations


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here; the message says why and how to enable it.

    Raised instead of returning a placeholder number: the evaluation records the metric as
    null with this message as the reason.
    """
