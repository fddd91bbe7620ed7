"""Per-operation energy ledger.

Every part of the simulated hardware (crossbar reads, programming pulses, counter
increments, neuron decisions) records what it did here, so a run can answer "how many
pulses and how much energy" without guessing afterwards.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

#: Digital reference costs at 45 nm, 16-bit operand (Horowitz, ISSCC 2014; see
#: docs/hardware.md §1). Used as defaults of the periphery below.
ADD_16BIT_J = 0.18e-12
SRAM_LOAD_J = 11e-12
DRAM_LOAD_J = 640e-12


@dataclass
class Entry:
    count: int = 0
    energy_j: float = 0.0


class EnergyLedger:
    """Counts of operations and their energy in joules, by operation name.

    >>> ledger = EnergyLedger()
    >>> ledger.record("read", 2, 1e-12)
    >>> ledger.total_j
    1e-12
    """

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = defaultdict(Entry)

    def record(self, operation: str, count: int, energy_j: float) -> None:
        """Add ``count`` operations costing ``energy_j`` joules in all."""
        if count < 0 or energy_j < 0:
            raise ValueError(
                f"EnergyLedger.record: count and energy_j must be >= 0, got {count}, {energy_j}"
            )
        entry = self._entries[operation]
        entry.count += int(count)
        entry.energy_j += float(energy_j)

    def count(self, operation: str) -> int:
        return self._entries[operation].count if operation in self._entries else 0

    def energy_j(self, operation: str) -> float:
        return self._entries[operation].energy_j if operation in self._entries else 0.0

    @property
    def operations(self) -> list[str]:
        return sorted(self._entries)

    @property
    def total_j(self) -> float:
        # in name order, so a ledger restored from as_dict() sums to the same last bit
        return sum(self._entries[k].energy_j for k in sorted(self._entries))

    def as_dict(self) -> dict:
        """JSON-ready summary: ``{operation: {"count": n, "energy_j": e}, "total_j": t}``."""
        out = {k: {"count": e.count, "energy_j": e.energy_j} for k, e in sorted(self._entries.items())}
        out["total_j"] = self.total_j
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "EnergyLedger":
        ledger = cls()
        ledger.load_dict(data)
        return ledger

    def reset(self) -> None:
        self._entries.clear()

    def load_dict(self, data: dict) -> None:
        """Replace the contents with an :meth:`as_dict` snapshot (in place)."""
        self.reset()
        for key, value in data.items():
            if key != "total_j":
                self.record(key, int(value["count"]), float(value["energy_j"]))

    def __repr__(self) -> str:
        parts = ", ".join(f"{k}: {e.count} ops {e.energy_j:.3g} J" for k, e in sorted(self._entries.items()))
        return f"EnergyLedger({parts}; total {self.total_j:.3g} J)"


#: ledger operation name -> component of :func:`energy_breakdown`
COMPONENTS: dict[str, str] = {
    "read": "array_reads", "verify_read": "array_reads", "synaptic_read": "array_reads",
    "read_back": "array_reads",
    "potentiate": "programming_pulses", "depress": "programming_pulses",
    "pulse_set": "programming_pulses", "pulse_reset": "programming_pulses",
    "switch": "programming_pulses",
    "dac": "converters", "adc": "converters", "sample_hold": "converters",
    "shift_add": "converters",
    "comparator": "neurons", "mtj_sample": "neurons", "wta": "neurons",
    "digital_neuron": "neurons",
    "counter_increment": "counters",
    "sram_read": "digital_memory", "sram_write": "digital_memory",
    "digital_op": "digital_logic", "digital": "digital_logic", "digital_add": "digital_logic",
}
#: the components, in report order ("other" collects operations not in COMPONENTS)
COMPONENT_ORDER = ("array_reads", "programming_pulses", "converters", "neurons", "counters",
                   "digital_memory", "digital_logic", "other")


def sum_reports(*reports) -> dict:
    """One report (:meth:`EnergyLedger.as_dict` form) summing the counts and energies of
    several ledgers or reports, operation by operation."""
    out: dict = {}
    for report in reports:
        if isinstance(report, EnergyLedger):
            report = report.as_dict()
        for op, entry in report.items():
            if op == "total_j":
                continue
            acc = out.setdefault(op, {"count": 0, "energy_j": 0.0})
            acc["count"] += entry["count"]
            acc["energy_j"] += entry["energy_j"]
    out["total_j"] = sum(v["energy_j"] for v in out.values())
    return out


def energy_breakdown(report) -> dict[str, float]:
    """Energy in joules by hardware component, from a ledger or its :meth:`EnergyLedger.as_dict`.

    Every component of :data:`COMPONENT_ORDER` is present (0.0 when unused), plus
    ``"total_j"``; operations without a component go to ``"other"``.

    >>> energy_breakdown({"read": {"count": 1, "energy_j": 2e-12}, "total_j": 2e-12})["array_reads"]
    2e-12
    """
    if isinstance(report, EnergyLedger):
        report = report.as_dict()
    if not isinstance(report, dict):
        raise TypeError(f"report must be an EnergyLedger or its as_dict(), got {type(report).__name__}")
    out = dict.fromkeys(COMPONENT_ORDER, 0.0)
    for op, entry in sorted(report.items()):
        if op == "total_j":
            continue
        if not isinstance(entry, dict) or "energy_j" not in entry:
            raise ValueError(f"report[{op!r}] must be a dict with 'energy_j', got {entry!r}")
        out[COMPONENTS.get(op, "other")] += float(entry["energy_j"])
    out["total_j"] = sum(out[k] for k in COMPONENT_ORDER)
    return out
