"""``apical floor``: the linear-readout floor of a config's split (analysis/floor.py).

Softmax regression on the inputs' summary: N-MNIST's events per pixel and polarity in the T-bin
window (all of them, and as the binned raster the network sees, at most one per bin), an image's
intensities.
"""

from __future__ import annotations

import json

from apical.runs.config import load_config
from apical.runs.datasets import load_dataset, nmnist_bin_width_us, nmnist_event_counts


def register(commands) -> None:
    """``apical floor``."""
    parser = commands.add_parser("floor", help="the linear-readout floor of a config's data split: softmax "
                                               "regression on event counts (N-MNIST) or intensities")
    parser.add_argument("config", help="a TOML file, e.g. runs/configs/nmnist.toml")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    parser.set_defaults(handler=command)


def command(args) -> int:
    from apical.analysis.floor import linear_readout_floor

    config = load_config(args.config, args.set)
    data = load_dataset(config)
    if data.is_spiking:
        window_us = config.model.time_steps * nmnist_bin_width_us(config.model.dt)  # the binned window
        features = {"events": [nmnist_event_counts(split, config.data.data_dir or None, len(labels), window_us)[0]
                               for split, labels in (("train", data.train_labels), ("test", data.test_labels))],
                    "binned": [data.train_inputs.sum(axis=1), data.test_inputs.sum(axis=1)]}
    else:
        features = {"intensities": [data.train_inputs, data.test_inputs]}
    rows = {}
    for name, (train, test) in features.items():
        floor = linear_readout_floor(train, data.train_labels, test, data.test_labels, data.n_classes)
        rows[name] = floor.as_dict()
        print(f"{name}: test accuracy {100 * floor.test_accuracy:.2f}%  (train {100 * floor.train_accuracy:.2f}%, "
              f"L2 {floor.penalty:g} chosen on the last {floor.n_validation} of {floor.n_train} training samples; "
              f"{floor.n_test} test samples, {floor.n_features} features)")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump({"config": str(args.config), "overrides": args.set, "floor": rows}, stream, indent=1)
    return 0
