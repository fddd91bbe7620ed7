"""Lifetime: accuracy against time after training, and what in-situ refresh restores
(``neuromem lifetime``).

The recipe's network is trained in situ (``--seed``); then time passes on every array
(``Crossbar.wait``: conductance drift of devices that drift, such as PCM; the Y-Flash
model has no retention loss, so its accuracy stays put), and the accuracy on the
evaluation split is measured at each of ``--times`` (seconds after training,
cumulative). After the last, ``--refresh-epochs`` more in-situ epochs of the top RBM
run on the drifted chip (on features read through the drifted lower layers) and the
accuracy is measured after each. Metrics: ``t_0``, ``t_<seconds>``, ``refresh_<k>``.

Ageing by retraining (``--cycles 0 1 3 10``): before time passes, the same chip is
retrained up to the largest N times; each retraining cycle programs every array back to
its starting conductances by program-and-verify (``MemristiveDBN.rewind``) and runs the
recipe's plan again, so the devices keep the wear of every pulse (Y-Flash: ``V_a`` and
``beta`` relax toward their limits with each program / erase pulse). After each listed
N: the accuracy (``cycle_<N>``) and the chip's wear (``ageing.cycle_<N>``: mean pulses
per device, mean of each ageing variable). ``t_0`` is then measured after the last cycle.
A retraining wears a device by a few pulses only; ``--wear-cycles K`` adds K full
program / full erase cycles of every device before each retraining (Y-Flash's endurance
test: program until G <= 0.5 nS, then erase until G >= 0.3 uS, pulse by pulse with a read
before each pulse), the wear of many retrainings at once. ``--wear-stride S`` (default 10)
simulates the first of them and then one in every S pulse by pulse and adds the wear of
the others in closed form from its pulse counts (Y-Flash ages by pulse count alone).

Writes ``results.json`` (settings and the accuracies under ``metrics``) into ``--out``.

Example::

    neuromem lifetime --recipe digits --device pcm --times 3600 86400 3.15e7
    neuromem lifetime --recipe digits --cycles 0 1 3 10 --times 3600
    neuromem lifetime --recipe digits --cycles 0 1 5 --wear-cycles 80
"""

from __future__ import annotations

import sys
import time

import numpy as np

from experiments.study import (check_network, resolve_network, run_study, study_parser,
                               write_results)

DEFAULT_TIMES = (3600.0, 86400.0, 2.592e6, 3.1536e7)  # 1 hour, 1 day, 30 days, 1 year
#: full cycles simulated pulse by pulse: one in WEAR_STRIDE (8x faster than every cycle
#: with 0.8 % fewer pulses over 40 cycles; measured in docs/studies.md)
WEAR_STRIDE = 10


def build_parser():
    p = study_parser("neuromem lifetime", "Accuracy against time after in-situ training "
                     "(drift), and after in-situ refresh epochs.")
    p.add_argument("--times", type=float, nargs="+", default=list(DEFAULT_TIMES), metavar="S",
                   help="seconds after training at which to measure (ascending)")
    p.add_argument("--refresh-epochs", type=int, default=2,
                   help="in-situ epochs of the top RBM after the last time")
    p.add_argument("--cycles", type=int, nargs="+", metavar="N",
                   help="retraining cycles (ascending, >= 0) after which to measure: the chip "
                        "is programmed back to its starting state and trained again, up to the "
                        "largest N times, before time passes (default: train once)")
    p.add_argument("--wear-cycles", type=int, default=0, metavar="K",
                   help="full program / full erase cycles every device takes before each "
                        "retraining (program-and-verify between the device's full-cycle "
                        "levels; Y-Flash): the wear of many retrainings at once")
    p.add_argument("--wear-stride", type=int, default=WEAR_STRIDE, metavar="S",
                   help="simulate one full cycle in S pulse by pulse and add the wear of the "
                        "other S-1 from its pulse counts (1: every cycle; default "
                        f"{WEAR_STRIDE})")
    return p


def check_argv(argv) -> dict:
    """Parse and check ``argv`` (exit status 2 and one line when bad); the settings."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.refresh_epochs < 0:
        parser.error(f"--refresh-epochs must be >= 0, got {args.refresh_epochs}")
    cycles = args.cycles
    if cycles is not None and (any(n < 0 for n in cycles) or list(cycles) != sorted(set(cycles))):
        parser.error(f"--cycles must be distinct, ascending whole numbers >= 0, got {cycles}")
    if args.wear_cycles < 0:
        parser.error(f"--wear-cycles must be >= 0, got {args.wear_cycles}")
    if args.wear_stride < 1:
        parser.error(f"--wear-stride must be >= 1, got {args.wear_stride}")
    if args.wear_cycles and not (cycles and max(cycles) >= 1):
        parser.error("--wear-cycles wears the chip before each retraining: give --cycles with "
                     "a largest N >= 1")
    times = args.times
    if any(not np.isfinite(t) or t <= 0 for t in times) or list(times) != sorted(set(times)):
        parser.error(f"--times must be distinct, ascending and > 0 seconds, got {times}")
    recipe, params = resolve_network(args, parser)
    check_network(parser, f"network of recipe {args.recipe}", params)
    if args.wear_cycles:
        from neuromem.devices import get_device

        device = get_device(params.get("device", "yflash"))
        if device.full_cycle_levels_s is None:
            parser.error(f"--wear-cycles: device {device.name} defines no full program / erase "
                         "levels (Y-Flash does)")
    if not isinstance(params.get("n_top_iter"), int):
        parser.error("the recipe's n_top_iter is 'auto': give --top-epochs N")
    return {"args": args, "recipe": recipe, "params": params, "parser": parser}


def _wait(dbn, seconds: float) -> None:
    for layer in list(dbn.layers_) + [dbn.top_]:
        layer.crossbar_.wait(seconds)


def _train(dbn, X, y, n_top: int) -> None:
    """The recipe's plan up to the last of its ``n_top`` top epochs (the refresh
    epochs, planned after them, stay for later)."""
    while True:
        stage, epoch = dbn.train_epoch(X, y)
        if stage == "top" and epoch + 1 == n_top:
            return


def full_cycles(dbn, n_cycles: int, stride: int = WEAR_STRIDE) -> None:
    """``n_cycles`` full program / full erase cycles on every healthy device of the chip
    (both arrays of each crossbar, :meth:`Crossbar.full_cycles`): program pulse by pulse
    until ``G`` is at or below the device's low full-cycle level, then erase until it is
    at or above the high one (200 pulses at most each way), so every device ends at the
    high level. One cycle in every ``stride`` (and the first) is simulated pulse by
    pulse, the wear of the others follows in closed form from its pulse counts."""
    for layer in list(dbn.layers_) + [dbn.top_]:
        xbar = layer.crossbar_
        arrays = ("plus",) if xbar.scheme == "single" else ("plus", "minus")
        for array in arrays:
            xbar.full_cycles(n_cycles, array=array, stride=stride, max_pulses=200)


def wear(dbn) -> dict:
    """The chip's wear: the mean pulses per device (``G+`` and ``G-`` of every array)
    and the mean of each of the device's ageing variables (``Device.ageing_names``;
    Y-Flash: ``va_v``, ``beta_v``) over the same devices."""
    pulses, sums, n = 0, {}, 0
    for layer in list(dbn.layers_) + [dbn.top_]:
        xbar = layer.crossbar_
        for array, count in (("plus", xbar.pulse_count), ("minus", xbar.reference_pulse_count)):
            if count is None:
                continue
            pulses += int(count.sum())
            n += count.size
            state = xbar.device_state(array)
            for name in xbar.device.ageing_names:
                sums[name] = sums.get(name, 0.0) + float(state[name].sum())
    return {"pulses_per_device": pulses / n, **{name: total / n for name, total in sums.items()}}


def main(argv=None) -> int:
    s = check_argv(argv)
    return run_study(s, lambda settings, data, out: _main(argv, settings, data, out),
                     f"results/lifetime-{s['recipe']['name']}-s{s['args'].seed}")


def _main(argv, settings, data, out) -> int:
    from networks import MemristiveDBN

    t_start = time.perf_counter()
    args, recipe, params = settings["args"], settings["recipe"], settings["params"]
    X, y, Xe, ye = data["X_train"], data["y_train"], data["X_eval"], data["y_eval"]

    n_top = params["n_top_iter"]
    dbn = MemristiveDBN(**{**params, "n_top_iter": n_top + args.refresh_epochs, "n_finetune": 0})
    Xt, yt = dbn.begin(X, y)
    t0 = time.perf_counter()
    _train(dbn, Xt, yt, n_top)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    metrics, ageing, rewinds = {}, {}, []
    cycles = args.cycles or []
    for n in range(max(cycles, default=0) + 1):
        if n:  # (wear it,) program it back to its starting state and train it again
            full_cycles(dbn, args.wear_cycles, args.wear_stride)
            rewinds.append(dbn.rewind())
            _train(dbn, Xt, yt, n_top)
        if n in cycles:
            metrics[f"cycle_{n}"] = float(dbn.score(Xe, ye))
            ageing[f"cycle_{n}"] = wear(dbn)
            print(f"after {n} retraining cycle(s): {100 * metrics[f'cycle_{n}']:.2f} %, "
                  + ", ".join(f"{k} {v:.4g}" for k, v in ageing[f"cycle_{n}"].items()),
                  file=sys.stderr)
    retrain_s = time.perf_counter() - t0
    metrics["t_0"] = float(dbn.score(Xe, ye))
    elapsed = 0.0
    for t in args.times:
        _wait(dbn, t - elapsed)
        elapsed = t
        metrics[f"t_{t:g}"] = float(dbn.score(Xe, ye))
        print(f"{t:g} s after training: {100 * metrics[f't_{t:g}']:.2f} %", file=sys.stderr)
    # refresh on the drifted chip: a reordered copy of the training set, so the top
    # stage reads its input afresh through the drifted lower layers
    order = np.random.default_rng(args.seed).permutation(len(Xt))
    Xr, yr = Xt[order], yt[order]
    for k in range(1, args.refresh_epochs + 1):
        dbn.train_epoch(Xr, yr)
        metrics[f"refresh_{k}"] = float(dbn.score(Xe, ye))
        print(f"after {k} refresh epoch(s): {100 * metrics[f'refresh_{k}']:.2f} %", file=sys.stderr)

    device = dbn.layers_[0].crossbar_.device
    results = {
        "experiment": "lifetime: accuracy against time after training, and after refresh",
        "recipe": recipe["name"], "seed": args.seed, "times_s": list(args.times),
        "device": device.describe(), "device_drifts": bool(device.drifts),
        "eval_set": data["eval_set"], "dataset": data["info"],
        "network": params,
        "metrics": metrics,
        "cycles": list(cycles), "wear_cycles_per_retraining": args.wear_cycles,
        "wear_stride": args.wear_stride,
        "ageing": ageing, "wear_after_refresh": wear(dbn),
        "rewinds": rewinds,
        "wall_time_s": {"training": train_s, "retraining_cycles": retrain_s,
                        "total": time.perf_counter() - t_start},
    }
    path = write_results(out, results, "lifetime", argv)
    last = f"t_{args.times[-1]:g}"
    print(f"{data['eval_set']} accuracy: after training {100 * metrics['t_0']:.2f} %, "
          f"{args.times[-1]:g} s later {100 * metrics[last]:.2f} %"
          + (f", after {args.refresh_epochs} refresh epochs "
             f"{100 * metrics[f'refresh_{args.refresh_epochs}']:.2f} %" if args.refresh_epochs else "")
          + f" | {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
