"""Converters (DAC, ADC, sample-and-hold, shift-and-add) and the energy breakdown."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neuromem import EnergyLedger
from neuromem.converters import ADC, DAC, ConverterChain, SampleHold, ShiftAdd
from neuromem.energy import COMPONENT_ORDER, energy_breakdown


def test_adc_quantises_to_nearest_signed_level_and_clips():
    # 3-bit signed: levels -3..3 of lsb = 1.5 / 3 = 0.5
    adc = ADC(bits=3)
    ledger = EnergyLedger()
    out = adc.convert([0.2, 0.26, -0.74, 1.2, 9.0, -9.0], 1.5, ledger)
    np.testing.assert_allclose(out, [0.0, 0.5, -0.5, 1.0, 1.5, -1.5])
    # Walden scaling: 2**(3-8) of the 8-bit energy, one conversion per value
    assert ledger.count("adc") == 6
    assert ledger.energy_j("adc") == pytest.approx(6 * 1.5625e-12 / 32)


def test_adc_unsigned_levels_and_isaac_numbers():
    adc = ADC(bits=2, signed=False)  # levels 0, 1/3, 2/3, 1
    np.testing.assert_allclose(adc.convert([-0.4, 0.1, 0.2, 0.5, 0.9], 1.0),
                               [0.0, 0.0, 1 / 3, 2 / 3, 1.0])
    isaac = ADC()
    assert isaac.conversion_energy_j == pytest.approx(2e-3 / 1.28e9)  # P / f_s
    assert isaac.conversion_time_s == pytest.approx(1 / 1.28e9)
    # one shared ADC converts 128 columns in turn; 64 columns take half as long
    assert isaac.read_time_s(128) == pytest.approx(100e-9)
    assert isaac.read_time_s(64) == pytest.approx(50e-9)
    assert ADC(energy_per_conversion_j=1e-12, bits=4).conversion_energy_j == 1e-12


def test_dac_quantises_and_books_per_cycle():
    dac = DAC(bits=2)  # unsigned, levels 0, 1/3, 2/3, 1 of full scale 0.3 V
    ledger = EnergyLedger()
    out = dac.convert([[0.0, 0.04, 0.06], [0.16, 0.3, 0.5]], 0.3, ledger)
    np.testing.assert_allclose(out, [[0.0, 0.0, 0.1], [0.2, 0.3, 0.3]])
    unit = 4e-3 / 1024 * 100e-9  # ISAAC: one 1-bit DAC for one 100 ns cycle
    assert dac.cycles == 2
    assert ledger.count("dac") == 12  # 6 values x 2 bit-serial cycles
    assert ledger.energy_j("dac") == pytest.approx(12 * unit)
    # 4 bits in 2 cycles of 2 bits: 2 cycles of 3 unit elements per value
    two = DAC(bits=4, bits_per_cycle=2)
    assert two.cycles == 2 and two.conversion_energy_j == pytest.approx(2 * 3 * unit)
    signed = DAC(bits=3, signed=True)  # -3..3 of 1/3
    np.testing.assert_allclose(signed.convert([-0.5, 0.2, 2.0], 1.0), [-2 / 3, 1 / 3, 1.0])


def test_shift_add_recombines_bit_slices():
    # input 6 = 0b110 streamed 1 bit per cycle against a weight of 5: slices 0, 5, 5
    sa = ShiftAdd()
    ledger = EnergyLedger()
    partials = np.array([[0.0, 0.0], [5.0, 1.0], [5.0, 2.0]])
    np.testing.assert_allclose(sa.combine(partials, 1, ledger), [30.0, 10.0])
    np.testing.assert_allclose(sa.combine(np.array([[1.0], [1.0]]), 2), [5.0])
    assert ledger.count("shift_add") == 6
    assert ledger.energy_j("shift_add") == pytest.approx(6 * 0.2e-3 / 1.28e9)


def test_sample_hold_books():
    ledger = EnergyLedger()
    SampleHold().sample(10, ledger)
    assert ledger.count("sample_hold") == 10
    assert ledger.energy_j("sample_hold") == pytest.approx(10 * 10e-6 / 1024 * 100e-9)


def test_chain_books_one_conversion_per_output_per_cycle():
    chain = ConverterChain(dac=DAC(bits=4), adc=ADC(bits=6))
    ledger = EnergyLedger()
    x = chain.input(np.full((2, 5), 0.5), 1.0, ledger)  # 2 vectors of 5 rows
    assert x.shape == (2, 5)
    out = chain.output(np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -1.0]]), 1.0, ledger)
    np.testing.assert_allclose(out, np.rint(np.array([[0.1, -0.2, 0.3], [0.0, 0.5, -1.0]]) * 31) / 31)
    assert ledger.count("dac") == 2 * 5 * 4
    assert ledger.count("sample_hold") == 6 * 4
    assert ledger.count("adc") == 6 * 4
    assert ledger.count("shift_add") == 6 * 4
    assert ledger.energy_j("adc") == pytest.approx(24 * 1.5625e-12 / 4)
    assert chain.read_time_s(3) == pytest.approx(4 * 3 / 1.28e9)


@pytest.mark.parametrize("make, match", [
    (lambda: ADC(bits=1), "ADC.bits"),
    (lambda: ADC(bits=17), "ADC.bits"),
    (lambda: ADC(bits=8.0), "ADC.bits must be an integer"),
    (lambda: ADC(sample_rate_hz=0.0), "ADC.sample_rate_hz"),
    (lambda: ADC(columns_shared=0), "ADC.columns_shared"),
    (lambda: ADC(energy_8bit_j=-1.0), "ADC.energy_8bit_j"),
    (lambda: DAC(bits=4, bits_per_cycle=5), "DAC.bits_per_cycle"),
    (lambda: DAC(signed="yes"), "DAC.signed"),
    (lambda: SampleHold(energy_per_sample_j=float("nan")), "SampleHold.energy_per_sample_j"),
    (lambda: ConverterChain(adc=DAC()), "ConverterChain.adc"),
])
def test_bad_parameters_name_the_field(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_bad_convert_input():
    with pytest.raises(ValueError, match="full_scale"):
        ADC().convert([0.1], 0.0)
    with pytest.raises(ValueError, match="finite"):
        DAC().convert([np.nan], 1.0)
    with pytest.raises(ValueError, match="bits_per_cycle"):
        ShiftAdd().combine(np.ones((2, 2)), 0)


def test_converters_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ADC().bits = 4


def test_energy_breakdown_groups_operations():
    ledger = EnergyLedger()
    for op, e in (("read", 1.0), ("verify_read", 0.5), ("potentiate", 2.0), ("depress", 3.0),
                  ("adc", 4.0), ("dac", 0.25), ("comparator", 5.0), ("counter_increment", 6.0),
                  ("sram_read", 7.0), ("digital_op", 8.0), ("mystery", 9.0)):
        ledger.record(op, 1, e)
    out = energy_breakdown(ledger)
    assert list(out) == list(COMPONENT_ORDER) + ["total_j"]
    assert out["array_reads"] == 1.5 and out["programming_pulses"] == 5.0
    assert out["converters"] == 4.25 and out["neurons"] == 5.0 and out["counters"] == 6.0
    assert out["digital_memory"] == 7.0 and out["digital_logic"] == 8.0 and out["other"] == 9.0
    assert out["total_j"] == pytest.approx(ledger.total_j)
    assert energy_breakdown(ledger.as_dict()) == out
    with pytest.raises(TypeError, match="report"):
        energy_breakdown([1, 2])
    with pytest.raises(ValueError, match="energy_j"):
        energy_breakdown({"read": 3})


def test_sum_reports_adds_ledgers_operation_by_operation():
    from neuromem import EnergyLedger
    from neuromem.energy import sum_reports

    a, b = EnergyLedger(), EnergyLedger()
    a.record("read", 2, 1e-12)
    b.record("read", 3, 2e-12)
    b.record("adc", 1, 5e-12)
    out = sum_reports(a, b.as_dict())
    assert out["read"] == {"count": 5, "energy_j": pytest.approx(3e-12)}
    assert out["adc"]["count"] == 1
    assert out["total_j"] == pytest.approx(8e-12)
