"""Dataset readers: real files, checksum and corruption errors, N-MNIST decoding and binning, CIFAR-10."""

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from apical.runs import datasets
from apical.runs.datasets import (
    DatasetError,
    bin_nmnist,
    images_to_intensity,
    load_cifar10,
    load_mnist,
    load_nmnist,
    read_cifar10_batch,
    read_idx,
    read_nmnist_events,
    sha256_of,
)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
NMNIST_SUBSET = SHARED_DATA / "nmnist-subset"
CIFAR_SAMPLE = SHARED_DATA / "cifar10-sample" / "test_batch_first20.bin"


# ---------------------------------------------------------------------------- MNIST (shipped)


def test_mnist_train_shapes_and_label_counts():
    images, labels = load_mnist("train")
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert images_to_intensity(images[:1000]).mean() == pytest.approx(0.1307, abs=0.01)


def test_mnist_test_shapes_and_label_counts():
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_images_to_intensity_range():
    intensity = images_to_intensity(np.array([[0, 51, 255]], dtype=np.uint8))
    assert intensity.dtype == np.float64
    assert intensity.tolist() == [[0.0, 0.2, 1.0]]


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("APICAL_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetError, match=str(tmp_path / "mnist")):
        load_mnist("test")


def test_bad_split_and_dataset_names():
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation")
    with pytest.raises(ValueError, match="dataset"):
        load_mnist("test", dataset="kmnist")


@pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist").is_dir(), reason=f"{SHARED_DATA}/fashion-mnist absent")
def test_fashion_mnist_from_shared_data():
    images, labels = load_mnist("test", dataset="fashion-mnist")
    assert images.shape == (10000, 28, 28)
    assert np.bincount(labels).tolist() == [1000] * 10


# ---------------------------------------------------------------------------- errors


def _copy_mnist_test(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    source = Path(datasets.__file__).resolve().parent.parent / "data" / "mnist"
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(source / name, folder / name)
    return folder


def test_checksum_mismatch_names_file_and_digests(tmp_path):
    folder = _copy_mnist_test(tmp_path)
    labels_path = folder / "t10k-labels-idx1-ubyte.gz"
    corrupted = bytearray(labels_path.read_bytes())
    corrupted[100] ^= 0xFF
    labels_path.write_bytes(bytes(corrupted))
    expected = datasets.SHA256["mnist"]["t10k-labels-idx1-ubyte.gz"]
    actual = sha256_of(labels_path)
    assert actual != expected
    with pytest.raises(DatasetError) as error:
        load_mnist("test", data_dir=tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert str(labels_path) in message and expected in message and actual in message


def test_sha256_cache_follows_file_changes(tmp_path):
    path = tmp_path / "file.bin"
    path.write_bytes(b"abc")
    first = sha256_of(path)
    assert sha256_of(path) == first
    path.write_bytes(b"abcd")  # new size: the cache must not answer with the old digest
    assert sha256_of(path) != first


def test_truncated_gzip_is_a_clear_error(tmp_path):
    folder = _copy_mnist_test(tmp_path)
    images_path = folder / "t10k-images-idx3-ubyte.gz"
    truncated = tmp_path / "truncated-idx3-ubyte.gz"
    truncated.write_bytes(images_path.read_bytes()[:5000])
    with pytest.raises(DatasetError, match="truncated") as error:
        read_idx(truncated)
    assert str(truncated) in str(error.value)
    # Through load_mnist the checksum catches it first, still naming the file.
    images_path.write_bytes(truncated.read_bytes())
    with pytest.raises(DatasetError, match="checksum mismatch") as error:
        load_mnist("test", data_dir=tmp_path)
    assert str(images_path) in str(error.value)


def test_idx_with_fewer_bytes_than_header_promises(tmp_path):
    path = tmp_path / "short-idx3-ubyte.gz"
    header = (2051).to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in (3, 28, 28))
    with gzip.open(path, "wb") as handle:
        handle.write(header + bytes(2 * 28 * 28))  # two images where three are promised
    with pytest.raises(DatasetError, match=r"header promises 2352 data bytes .* found 1568"):
        read_idx(path)


def test_idx_parses_a_written_file(tmp_path):
    path = tmp_path / "tiny-idx1-ubyte.gz"
    with gzip.open(path, "wb") as handle:
        handle.write((2049).to_bytes(4, "big") + (3).to_bytes(4, "big") + bytes([7, 0, 9]))
    assert read_idx(path).tolist() == [7, 0, 9]
    bad_magic = tmp_path / "bad-idx1-ubyte.gz"
    with gzip.open(bad_magic, "wb") as handle:
        handle.write((1234).to_bytes(4, "big") + bytes(8))
    with pytest.raises(DatasetError, match="magic number 1234"):
        read_idx(bad_magic)


def test_missing_file_says_where_to_put_it(tmp_path):
    folder = _copy_mnist_test(tmp_path)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="missing") as error:
        load_mnist("test", data_dir=tmp_path)
    message = str(error.value)
    assert str(folder / "t10k-labels-idx1-ubyte.gz") in message and f"in {folder}" in message


def test_missing_dataset_folder(tmp_path):
    with pytest.raises(DatasetError, match="fashion-mnist") as error:
        load_mnist("train", data_dir=tmp_path, dataset="fashion-mnist")
    assert str(tmp_path / "fashion-mnist") in str(error.value)


# ---------------------------------------------------------------------------- N-MNIST


def _encode_events(events):
    """The N-MNIST 40-bit layout, written independently of the reader."""
    out = bytearray()
    for x, y, p, t in events:
        out += bytes([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF])
    return bytes(out)


EVENTS = [
    (0, 0, 0, 0),  # first bin, OFF
    (33, 0, 1, 4999),  # first bin, ON, last microsecond of the bin
    (5, 7, 1, 5000),  # second bin
    (5, 7, 1, 5001),  # same neuron, same bin: still one spike
    (12, 33, 0, 299_999),  # last kept microsecond (bin 59)
    (1, 1, 1, 300_000),  # beyond 300 ms: dropped
    (2, 3, 0, 8_388_607),  # largest 23-bit timestamp: dropped
]


def test_read_nmnist_events_decodes_exactly(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events(EVENTS))
    events = read_nmnist_events(path)
    assert events["x"].tolist() == [e[0] for e in EVENTS]
    assert events["y"].tolist() == [e[1] for e in EVENTS]
    assert events["p"].tolist() == [e[2] for e in EVENTS]
    assert events["t_us"].tolist() == [e[3] for e in EVENTS]


def test_bin_nmnist_presence_and_cutoff(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events(EVENTS))
    raster = bin_nmnist(read_nmnist_events(path))
    assert raster.shape == (60, 2 * 34 * 34) and raster.dtype == np.uint8
    expected = {(0, 0), (0, 34 * 34 + 33), (1, 34 * 34 + 7 * 34 + 5), (59, 33 * 34 + 12)}
    assert set(zip(*np.nonzero(raster))) == expected
    assert raster.max() == 1


def test_read_nmnist_events_polarity_bit_does_not_leak_into_the_timestamp(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events([(33, 33, 1, 2**23 - 1)]))  # every bit of bytes 3-5 set
    events = read_nmnist_events(path)
    assert events[["x", "y", "p"]].tolist() == [(33, 33, 1)]
    assert events["t_us"].tolist() == [8_388_607]


def test_nmnist_overflow_markers_shift_later_timestamps(tmp_path):
    # y = 240 marks a timestamp overflow: 2**13 µs is added to every later event, the marker is no event.
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events([
        (3, 4, 1, 4_000),  # bin 0
        (0, 240, 0, 0),  # marker
        (3, 4, 1, 1_000),  # 9,192 µs: bin 1
        (0, 240, 0, 0),  # marker
        (6, 5, 0, 283_000),  # 299,384 µs: bin 59
        (6, 6, 0, 284_000),  # 300,384 µs: past the 300 ms window
    ]))
    events = read_nmnist_events(path)
    assert events["y"].tolist() == [4, 4, 5, 6]
    assert events["t_us"].tolist() == [4_000, 9_192, 299_384, 300_384]
    raster = bin_nmnist(events)
    on = 34 * 34
    assert set(zip(*np.nonzero(raster))) == {(0, on + 4 * 34 + 3), (1, on + 4 * 34 + 3), (59, 5 * 34 + 6)}


def test_nmnist_timestamp_wrap_is_unwrapped(tmp_path):
    # The 23-bit counter rolling over (a fall of more than half its range) adds 2**23 µs from there on;
    # a small step back is left as it is.
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events([(1, 1, 0, 2**23 - 10), (1, 2, 0, 5), (1, 3, 0, 3), (1, 4, 0, 2**22)]))
    assert read_nmnist_events(path)["t_us"].tolist() == [2**23 - 10, 2**23 + 5, 2**23 + 3, 2**23 + 2**22]


def test_bin_nmnist_window_and_bin_width_are_parameters():
    events = np.zeros(3, dtype=datasets.NMNIST_EVENT)
    events["x"], events["t_us"] = [0, 1, 2], [0, 9_999, 10_000]
    raster = bin_nmnist(events, time_bins=2, bin_width_us=5_000)  # a 10 ms window
    assert raster.shape == (2, 2312)
    assert set(zip(*np.nonzero(raster))) == {(0, 0), (1, 1)}
    with pytest.raises(ValueError, match="time_bins"):
        bin_nmnist(events, time_bins=0)


def test_nmnist_bins_follow_the_config_time_step(tmp_path):
    from apical.runs.config import load_config
    from apical.runs.train import load_dataset

    for split in ("Train", "Test"):
        folder = tmp_path / "nmnist" / split / "2"
        folder.mkdir(parents=True)
        (folder / "00001.bin").write_bytes(_encode_events([(0, 0, 0, 14_999), (1, 0, 0, 15_000), (2, 0, 0, 300_000)]))
    config = load_config("runs/configs/nmnist.toml", [f"data.data_dir={json.dumps(str(tmp_path))}",
                                                      'model.dt="15*ms"', "model.time_steps=20", "biograd.error_start=6"])
    data = load_dataset(config)
    assert data.train_inputs.shape == (1, 20, 2312)
    assert set(zip(*np.nonzero(data.train_inputs[0]))) == {(0, 0), (1, 1)}  # 15 ms bins, 300 ms window
    assert datasets.nmnist_bin_width_us(config.model.dt) == 15_000
    with pytest.raises(DatasetError, match="whole number of microseconds"):
        datasets.nmnist_bin_width_us(config.model.dt / 30_000)


def test_corrupted_nmnist_file(tmp_path):
    path = tmp_path / "00001.bin"
    path.write_bytes(_encode_events(EVENTS)[:-2])
    with pytest.raises(DatasetError, match="not a multiple of 5") as error:
        read_nmnist_events(path)
    assert str(path) in str(error.value)


def test_load_nmnist_from_written_tree(tmp_path):
    for split, label, number, events in [
        ("Train", 3, 2, EVENTS[:2]),
        ("Train", 1, 1, EVENTS[2:4]),
        ("Test", 0, 1, EVENTS[4:5]),
    ]:
        folder = tmp_path / "nmnist" / split / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{number:05d}.bin").write_bytes(_encode_events(events))
    rasters, labels = load_nmnist("train", data_dir=tmp_path)
    assert labels.tolist() == [1, 3]  # ordered by file number (the MNIST index)
    assert rasters.shape == (2, 60, 2312)
    assert rasters[0].sum() == 1 and rasters[1].sum() == 2
    rasters, labels = load_nmnist("test", data_dir=tmp_path, limit=1)
    assert labels.tolist() == [0] and rasters[0, 59, 33 * 34 + 12] == 1


def test_nmnist_missing_folder_says_where(tmp_path):
    with pytest.raises(DatasetError, match="Train.zip") as error:
        load_nmnist("train", data_dir=tmp_path)
    assert str(tmp_path / "nmnist" / "Train") in str(error.value)


def test_nmnist_checksum_list_is_used(tmp_path):
    folder = tmp_path / "nmnist-subset" / "Train" / "4"
    folder.mkdir(parents=True)
    (folder / "00001.bin").write_bytes(_encode_events(EVENTS))
    (tmp_path / "nmnist-subset" / "SHA256SUMS").write_text("0" * 64 + "  Train/4/00001.bin\n")
    with pytest.raises(DatasetError, match="checksum mismatch"):
        load_nmnist("train", data_dir=tmp_path)


@pytest.mark.skipif(not NMNIST_SUBSET.is_dir(), reason=f"N-MNIST subset not found at {NMNIST_SUBSET}")
def test_nmnist_subset_real_files():
    rasters, labels = load_nmnist("train", data_dir=SHARED_DATA, limit=3)
    assert labels.tolist() == [5, 0, 4]  # MNIST train labels 0..2
    assert rasters.shape == (3, 60, 2312) and set(np.unique(rasters)) <= {0, 1}
    events = read_nmnist_events(NMNIST_SUBSET / "Train" / "5" / "00001.bin")
    assert events.size == 4681  # from the subset's index.csv
    assert events["x"].max() <= 33 and events["y"].max() <= 33
    assert np.all(np.diff(events["t_us"].astype(np.int64)) >= 0)
    in_window = events[events["t_us"] < 300_000]
    neurons = in_window["p"].astype(int) * 1156 + in_window["y"].astype(int) * 34 + in_window["x"]
    bins = in_window["t_us"] // 5000
    assert rasters[0].sum() == len(set(zip(bins.tolist(), neurons.tolist())))


# ---------------------------------------------------------------------------- CIFAR-10


@pytest.mark.skipif(not CIFAR_SAMPLE.is_file(), reason=f"CIFAR-10 sample not found at {CIFAR_SAMPLE}")
def test_cifar10_sample():
    images, labels = read_cifar10_batch(CIFAR_SAMPLE)
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1, 0, 9, 5, 7, 9, 8, 5, 7, 8, 6]
    assert images[0, 0, 0].tolist() == [158, 112, 49]


def test_cifar10_layout_and_bad_length(tmp_path):
    record = np.zeros(3073, dtype=np.uint8)
    record[0] = 7
    record[1 + 0 * 1024 + 1 * 32 + 2] = 10  # R at row 1, column 2
    record[1 + 2 * 1024 + 31 * 32 + 0] = 20  # B at row 31, column 0
    path = tmp_path / "batch.bin"
    path.write_bytes(record.tobytes())
    images, labels = read_cifar10_batch(path)
    assert labels.tolist() == [7]
    assert images[0, 1, 2].tolist() == [10, 0, 0] and images[0, 31, 0].tolist() == [0, 0, 20]
    path.write_bytes(record.tobytes()[:-1])
    with pytest.raises(DatasetError, match="multiple of 3073") as error:
        read_cifar10_batch(path)
    assert str(path) in str(error.value)


def write_cifar10_tree(folder, records_per_batch=3, with_sums=True):
    """A CIFAR-10 folder in the binary batch format: record r of batch b has label (b + r) % 10 and
    every pixel of its R plane equal to 10·b + r."""
    folder.mkdir(parents=True)
    names = [f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]
    for b, name in enumerate(names):
        records = np.zeros((records_per_batch, 3073), dtype=np.uint8)
        records[:, 0] = (b + np.arange(records_per_batch)) % 10
        records[:, 1:1025] = (10 * b + np.arange(records_per_batch))[:, None]
        (folder / name).write_bytes(records.tobytes())
    if with_sums:
        (folder / "SHA256SUMS").write_text("".join(f"{sha256_of(folder / n)}  {n}\n" for n in names))
    return names


def test_load_cifar10_from_written_batches(tmp_path):
    write_cifar10_tree(tmp_path / "cifar10")
    train, train_labels = load_cifar10("train", data_dir=tmp_path)
    test, test_labels = load_cifar10("test", data_dir=tmp_path)
    assert train.shape == (15, 32, 32, 3) and test.shape == (3, 32, 32, 3)
    assert train_labels.tolist() == [(b + r) % 10 for b in range(5) for r in range(3)]
    assert train[:, 5, 7, 0].tolist() == [10 * b + r for b in range(5) for r in range(3)]
    assert train[:, :, :, 1:].max() == 0 and test[:, 0, 0, 0].tolist() == [50, 51, 52]


def test_cifar10_checksum_mismatch_and_missing_batch(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"  # the folder the canonical archive unpacks to
    write_cifar10_tree(folder)
    assert load_cifar10("test", data_dir=tmp_path)[0].shape[0] == 3
    data = bytearray((folder / "data_batch_3.bin").read_bytes())
    data[100] ^= 1
    (folder / "data_batch_3.bin").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="checksum mismatch") as error:
        load_cifar10("train", data_dir=tmp_path)
    assert "data_batch_3.bin" in str(error.value)
    (folder / "test_batch.bin").unlink()
    with pytest.raises(DatasetError, match="cifar-10-binary.tar.gz") as error:
        load_cifar10("test", data_dir=tmp_path)
    assert "test_batch.bin" in str(error.value)


def test_cifar10_as_a_training_dataset(tmp_path):
    from apical.runs.config import config_from_dict
    from apical.runs.train import load_dataset

    write_cifar10_tree(tmp_path / "cifar10", with_sums=False)
    config = config_from_dict({"data": {"dataset": "cifar10", "data_dir": str(tmp_path), "train_samples": 4}})
    data = load_dataset(config)
    assert data.train_inputs.shape == (4, 3072) and data.test_inputs.shape == (3, 3072)
    assert data.train_inputs.max() <= 1.0 and data.train_labels.tolist() == [0, 1, 2, 1]


@pytest.mark.skipif(not CIFAR_SAMPLE.is_file(), reason=f"CIFAR-10 sample not found at {CIFAR_SAMPLE}")
def test_cifar10_sample_matches_its_checksum():
    expected = datasets._read_sha256sums(CIFAR_SAMPLE.parent / "SHA256SUMS")["test_batch_first20.bin"]
    datasets.verify_sha256(CIFAR_SAMPLE, expected)


# --- data.shift_pixels ------------------------------------------------------------------------------


def moved_by_hand(image, dx, dy):
    """Reference: pixel (y, x) of every channel goes to (y + dy, x + dx) when that is on the sensor."""
    channels, height, width = image.shape
    out = np.zeros_like(image)
    for c in range(channels):
        for y in range(height):
            for x in range(width):
                if 0 <= y + dy < height and 0 <= x + dx < width:
                    out[c, y + dy, x + dx] = image[c, y, x]
    return out


@pytest.mark.parametrize("time_steps", [None, 3], ids=["intensities", "rasters"])
def test_shift_samples_moves_each_sample_by_its_keyed_offset(time_steps):
    from apical.models.encoders import sample_rng
    from apical.runs.datasets import shift_samples

    geometry, k, seed, first = (2, 5, 6), 2, 7, 100
    rng = np.random.default_rng(0)
    shape = (60, 60) if time_steps is None else (60, time_steps, 60)
    samples = rng.integers(1, 9, size=shape).astype(np.uint8)
    moved = shift_samples(samples, geometry, k, seed, first)
    assert moved.shape == samples.shape and moved.dtype == samples.dtype
    offsets = set()
    for i in range(len(samples)):
        dx, dy = sample_rng(seed, "shift", first + i).integers(-k, k + 1, size=2)
        offsets.add((int(dx), int(dy)))
        for frame, expected in zip(moved[i].reshape(-1, 60), samples[i].reshape(-1, 60)):
            np.testing.assert_array_equal(frame.reshape(geometry), moved_by_hand(expected.reshape(geometry), dx, dy))
    assert len(offsets) >= 15 and {dx for dx, _ in offsets} == {dy for _, dy in offsets} == set(range(-k, k + 1))
    np.testing.assert_array_equal(shift_samples(samples[5:9], geometry, k, seed, first + 5), moved[5:9])
    with pytest.raises(ValueError, match="geometry"):
        shift_samples(samples, (1, 28, 28), k, seed, first)
