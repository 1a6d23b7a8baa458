"""Summaries of repeated measurements: the median with the min and max beside it."""
import statistics
from dataclasses import dataclass


@dataclass
class Summary:
    median: float
    low: float
    high: float
    n: int


def summarize(values) -> Summary:
    values = list(values)
    if not values:
        raise ValueError("no values to summarize")
    return Summary(statistics.median(values), min(values), max(values), len(values))
