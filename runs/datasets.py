"""Dataset readers for the original file formats, with checksum verification.

- MNIST (LeCun et al. 1998) and Fashion-MNIST (Xiao et al. 2017): the four IDX gzip files per
  dataset. An IDX file is a big-endian header — magic number (2051 for images, 2049 for labels),
  then one uint32 per dimension — followed by the uint8 data in C order.
- N-MNIST (Orchard et al. 2015): one ``.bin`` file per recording, 5 bytes per event: byte 0 is x,
  byte 1 is y, bit 7 of byte 2 is the polarity and the other 23 bits of bytes 2-4 are the
  timestamp in microseconds, big-endian.
- CIFAR-10 (Krizhevsky 2009) binary batches: records of 3073 bytes, one label byte then the
  1024 red, 1024 green and 1024 blue pixels of a 32 x 32 image in row-major order.

Every gzip file is checked against the SHA-256 digests below before it is parsed; N-MNIST files
are checked against a ``SHA256SUMS`` file when the dataset folder carries one. A bad, truncated or
missing file raises :class:`DatasetError` with a one-line message naming the file.

:data:`DATASETS` lists what ``data.dataset`` may name, each with its reader; :func:`load_dataset` reads
a config's splits through it (the config parser and every command take their choices from it).

Data directory, first match wins: the ``data_dir`` argument, the ``APICAL_DATA_DIR`` environment
variable, the repository's ``data/`` folder (MNIST ships there), then ``../shared/data`` beside the
repository. Inside it, each dataset has its own folder: ``mnist/``, ``fashion-mnist/``,
``nmnist/`` (or ``nmnist-subset/``).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apical.circuits.framework import ConfigError
from apical.models.encoders import encode_batch, sample_rng

__all__ = [
    "DATASETS",
    "DatasetKind",
    "Dataset",
    "load_dataset",
    "encode",
    "SAMPLE_GEOMETRY",
    "DatasetError",
    "SHA256",
    "IDX_FILES",
    "NMNIST_SIZE",
    "data_roots",
    "sha256_of",
    "verify_sha256",
    "read_idx",
    "load_mnist",
    "images_to_intensity",
    "NMNIST_EVENT",
    "read_nmnist_events",
    "bin_nmnist",
    "nmnist_files",
    "load_nmnist",
    "nmnist_event_counts",
    "nmnist_bin_width_us",
    "read_cifar10_batch",
    "load_cifar10",
]

ENV_DATA_DIR = "APICAL_DATA_DIR"

# Canonical SHA-256 digests of the distribution files (identical to those in shared/data/*/SHA256SUMS).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}

# (images file, labels file) per split; the same names for MNIST and Fashion-MNIST.
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Canonical download addresses, quoted in error messages so a user knows where the files come from.
SOURCES = {
    "mnist": "https://yann.lecun.com/exdb/mnist/ (or any mirror with the same SHA-256)",
    "fashion-mnist": "https://github.com/zalandoresearch/fashion-mnist/tree/master/data/fashion",
    "nmnist": "https://www.garrickorchard.com/datasets/n-mnist (Train.zip / Test.zip, unzipped)",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (unpacked: cifar-10-batches-bin/)",
}

IDX_IMAGES_MAGIC = 2051  # unsigned byte data, 3 dimensions
IDX_LABELS_MAGIC = 2049  # unsigned byte data, 1 dimension

NMNIST_SIZE = 34  # ATIS sensor area used by N-MNIST, pixels per side
NMNIST_FOLDERS = ("nmnist", "nmnist-subset")
NMNIST_SPLITS = {"train": "Train", "test": "Test"}

# Decoded N-MNIST event: position, polarity (0 = OFF, 1 = ON) and time in microseconds.
NMNIST_EVENT = np.dtype([("x", np.uint8), ("y", np.uint8), ("p", np.uint8), ("t_us", np.uint32)])
NMNIST_TIMESTAMP_RANGE = 1 << 23  # the timestamp field is 23 bits of microseconds
NMNIST_OVERFLOW_Y = 240  # y of a timestamp-overflow marker event (not a pixel)
NMNIST_OVERFLOW_US = 1 << 13  # what each marker adds to the later timestamps

CIFAR10_RECORD = 1 + 3 * 32 * 32  # label byte + R, G, B planes
CIFAR10_FOLDERS = ("cifar10", "cifar-10-batches-bin")
CIFAR10_BATCHES = {"train": tuple(f"data_batch_{k}.bin" for k in range(1, 6)), "test": ("test_batch.bin",)}


class DatasetError(ValueError):
    """A dataset file is missing, corrupted or does not match its checksum."""


# --------------------------------------------------------------------------------------------
# locating data


def _repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def data_roots(data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Folders searched for datasets, in order (an explicit or environment folder is the only one)."""
    if data_dir is not None and str(data_dir) != "":
        return [Path(data_dir).expanduser()]
    from_env = os.environ.get(ENV_DATA_DIR, "")
    if from_env:
        return [Path(from_env).expanduser()]
    root = _repository_root()
    return [root / "data", root.parent / "shared" / "data"]


def _find_dataset_folder(names: tuple[str, ...], data_dir, required: tuple[str, ...]) -> Path:
    """First `<root>/<name>` holding all `required` entries, else a DatasetError saying where to put them."""
    roots = data_roots(data_dir)
    for root in roots:
        for name in names:
            folder = root / name
            if folder.is_dir() and all((folder / entry).exists() for entry in required):
                return folder
    # Nothing complete: point at the first folder that exists at all, else at the preferred place.
    for root in roots:
        for name in names:
            if (root / name).is_dir():
                return root / name
    return roots[0] / names[0]


# --------------------------------------------------------------------------------------------
# checksums

# (resolved path, size, mtime_ns) -> hex digest; a file rewritten in place changes size or mtime.
_digest_cache: dict[tuple[str, int, int], str] = {}


def sha256_of(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, cached in-process by (path, size, mtime)."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    digest = _digest_cache.get(key)
    if digest is None:
        hasher = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                hasher.update(block)
        digest = hasher.hexdigest()
        _digest_cache[key] = digest
    return digest


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise DatasetError unless the file's SHA-256 digest equals `expected`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} is missing")
    actual = sha256_of(path)
    if actual != expected.lower():
        raise DatasetError(
            f"checksum mismatch for {path}: expected sha256 {expected.lower()}, got {actual} "
            "(the file is corrupted or not the original; replace it)"
        )


# --------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST (IDX)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (gzip-compressed if its name ends in .gz) into a uint8 array.

    No checksum is checked here; :func:`load_mnist` does that first.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"IDX file {path} is missing")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as error:
        raise DatasetError(f"IDX file {path} is truncated or not valid gzip ({error})") from None
    if len(raw) < 4:
        raise DatasetError(f"IDX file {path} is truncated: {len(raw)} bytes, no header")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in (IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC):
        raise DatasetError(
            f"IDX file {path} has magic number {magic}, expected {IDX_IMAGES_MAGIC} (images) "
            f"or {IDX_LABELS_MAGIC} (labels)"
        )
    ndim = magic & 0xFF  # the low byte of the magic number is the number of dimensions
    header_bytes = 4 + 4 * ndim
    if len(raw) < header_bytes:
        raise DatasetError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    promised = int(np.prod(shape, dtype=np.int64))
    present = len(raw) - header_bytes
    if present < promised:
        raise DatasetError(
            f"IDX file {path} is truncated: header promises {promised} data bytes {shape}, found {present}"
        )
    if present > promised:
        raise DatasetError(f"IDX file {path} has {present - promised} bytes more than its header {shape} says")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_bytes).reshape(shape)


def load_mnist(
    split: str, data_dir: str | os.PathLike | None = None, dataset: str = "mnist"
) -> tuple[np.ndarray, np.ndarray]:
    """Images (uint8 [N, 28, 28]) and labels (uint8 [N]) of MNIST or Fashion-MNIST.

    split: "train" (60,000) or "test" (10,000); dataset: "mnist" or "fashion-mnist".
    """
    if split not in IDX_FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if dataset not in SHA256:
        raise ValueError(f"dataset must be one of {sorted(SHA256)}, got {dataset!r}")
    images_name, labels_name = IDX_FILES[split]
    folder = _find_dataset_folder((dataset,), data_dir, (images_name, labels_name))
    arrays = []
    for name in (images_name, labels_name):
        path = folder / name
        if not path.is_file():
            raise DatasetError(
                f"{dataset} file {path} is missing: put the original {name} in {folder} "
                f"(from {SOURCES[dataset]}), or set {ENV_DATA_DIR} to a folder holding {dataset}/"
            )
        verify_sha256(path, SHA256[dataset][name])
        arrays.append(read_idx(path))
    images, labels = arrays
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise DatasetError(
            f"{dataset} {split}: images {images.shape} and labels {labels.shape} do not match"
        )
    return images, labels


def images_to_intensity(images: np.ndarray) -> np.ndarray:
    """Pixel values 0..255 as float64 intensities in [0, 1] (the rate code's spike probabilities)."""
    return np.asarray(images, dtype=np.float64) / 255.0


# --------------------------------------------------------------------------------------------
# N-MNIST (40-bit events)


def read_nmnist_events(path: str | os.PathLike) -> np.ndarray:
    """Decode one N-MNIST recording into a structured array with fields x, y, p, t_us.

    One event is 40 bits: x (8), y (8), polarity (1) and a 23-bit timestamp in microseconds.
    Two ways a timestamp can run past its field are undone, so that t_us keeps growing:
    an event with y = 240 is a timestamp-overflow marker of the ATIS recordings (the dataset
    authors' reader adds 2**13 µs to every later event and drops the marker), and a timestamp
    that falls by more than half the 23-bit range is the counter wrapping (2**23 µs added to it
    and every later event). N-MNIST's recordings last about 0.3 s, far below 2**23 µs ≈ 8.4 s.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"N-MNIST file {path} is missing")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 5:
        raise DatasetError(
            f"N-MNIST file {path} is corrupted: {raw.size} bytes is not a multiple of 5 (one event = 5 bytes)"
        )
    fields = raw.reshape(-1, 5).astype(np.int64)
    stamp = ((fields[:, 2] & 0x7F) << 16) | (fields[:, 3] << 8) | fields[:, 4]
    overflow = fields[:, 1] == NMNIST_OVERFLOW_Y
    # Each marker and each wrap shifts every event after it: the offsets accumulate.
    kept = ~overflow
    stamp = stamp[kept] + (np.cumsum(overflow) * NMNIST_OVERFLOW_US)[kept]
    wrapped = np.zeros(stamp.size, dtype=np.int64)
    wrapped[1:] = np.diff(stamp) < -(NMNIST_TIMESTAMP_RANGE // 2)
    events = np.empty(stamp.size, dtype=NMNIST_EVENT)
    events["x"] = fields[kept, 0]
    events["y"] = fields[kept, 1]
    events["p"] = fields[kept, 2] >> 7
    events["t_us"] = stamp + np.cumsum(wrapped) * NMNIST_TIMESTAMP_RANGE
    return events


def bin_nmnist(
    events: np.ndarray, time_bins: int = 60, bin_width_us: int = 5000, size: int = NMNIST_SIZE
) -> np.ndarray:
    """Spike raster uint8 [time_bins, 2 * size * size]: 1 where a pixel/polarity had >= 1 event in a bin.

    Only events with t_us < time_bins * bin_width_us are kept (300 ms by default);
    input neuron index = p * size * size + y * size + x.
    """
    if time_bins < 1 or bin_width_us <= 0:
        raise ValueError(f"time_bins must be >= 1 and bin_width_us > 0, got {time_bins}, {bin_width_us}")
    x = events["x"].astype(np.int64)
    y = events["y"].astype(np.int64)
    if x.size and (x.max() >= size or y.max() >= size):
        raise DatasetError(f"N-MNIST event outside the {size}x{size} sensor (x max {x.max()}, y max {y.max()})")
    time_bin = events["t_us"].astype(np.int64) // bin_width_us
    kept = time_bin < time_bins
    neuron = events["p"].astype(np.int64) * size * size + y * size + x
    raster = np.zeros((time_bins, 2 * size * size), dtype=np.uint8)
    raster[time_bin[kept], neuron[kept]] = 1
    return raster


def shift_samples(samples: np.ndarray, geometry: tuple[int, int, int], max_shift: int, seed: int,
                  first_index: int) -> np.ndarray:
    """Each sample moved by a whole-pixel offset (dx, dy), both uniform in [−max_shift, max_shift],
    what falls off the edge dropped and what comes in empty (0): sample i draws its offset from
    sample_rng(seed, "shift", first_index + i), so a position in the training stream always gets
    the same one. ``samples`` is [N, C·H·W] or [N, T, C·H·W]; returns a new array of the same shape."""
    channels, height, width = geometry
    if samples.shape[-1] != channels * height * width:
        raise ValueError(f"samples have {samples.shape[-1]} inputs, the geometry {geometry} has {channels * height * width}")
    images = samples.reshape(*samples.shape[:-1], channels, height, width)
    moved = np.zeros_like(images)
    for i in range(len(samples)):
        dx, dy = sample_rng(seed, "shift", first_index + i).integers(-max_shift, max_shift + 1, size=2)
        if abs(dx) >= width or abs(dy) >= height:
            continue  # moved off the sensor entirely
        moved[i, ..., max(0, dy):height + min(0, dy), max(0, dx):width + min(0, dx)] = \
            images[i, ..., max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)]
    return moved.reshape(samples.shape)


def nmnist_bin_width_us(dt) -> int:
    """One time step (a Brian2 time, e.g. the config's ``model.dt``; its value in seconds) as the
    bin width in whole µs."""
    width = float(np.asarray(dt)) * 1e6
    if width < 1 or abs(width - round(width)) > 1e-6:
        raise DatasetError(f"model.dt = {dt}: an N-MNIST time bin must be a whole number of microseconds (≥ 1 µs)")
    return int(round(width))


def _read_sha256sums(path: Path) -> dict[str, str]:
    digests = {}
    for line in path.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            digests[name.lstrip("*")] = digest
    return digests


def nmnist_files(split: str, data_dir: str | os.PathLike | None = None) -> list[tuple[Path, int]]:
    """(path, label) of every N-MNIST recording of a split, ordered by file number (the MNIST index)."""
    if split not in NMNIST_SPLITS:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    split_folder = NMNIST_SPLITS[split]
    folder = _find_dataset_folder(NMNIST_FOLDERS, data_dir, (split_folder,))
    root = folder / split_folder
    if not root.is_dir():
        raise DatasetError(
            f"N-MNIST folder {root} is missing: unzip the original Train.zip/Test.zip into "
            f"<data_dir>/nmnist/ (from {SOURCES['nmnist']}) so that it holds "
            f"Train/<label>/<NNNNN>.bin, or set {ENV_DATA_DIR}"
        )
    recordings = []
    for label_folder in sorted(root.iterdir()):
        if label_folder.is_dir() and label_folder.name.isdigit():
            for path in label_folder.glob("*.bin"):
                recordings.append((path, int(label_folder.name)))
    if not recordings:
        raise DatasetError(f"N-MNIST folder {root} holds no <label>/<NNNNN>.bin recordings")

    def order(item):
        path, label = item
        number = int(path.stem) if path.stem.isdigit() else -1
        return (number, label, path.name)

    recordings.sort(key=order)
    return recordings


def load_nmnist(
    split: str,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    time_bins: int = 60,
    bin_width_us: int = 5000,
) -> tuple[np.ndarray, np.ndarray]:
    """Binned N-MNIST: rasters uint8 [N, time_bins, 2312] and labels uint8 [N].

    Reads `<data_dir>/nmnist/{Train,Test}/<label>/<NNNNN>.bin` (or `nmnist-subset/`), the first
    `limit` recordings in file-number order. Files listed in the folder's SHA256SUMS are verified.
    """
    recordings = nmnist_files(split, data_dir)
    if limit is not None:
        recordings = recordings[:limit]
    dataset_folder = recordings[0][0].parent.parent.parent
    sums_path = dataset_folder / "SHA256SUMS"
    expected = _read_sha256sums(sums_path) if sums_path.is_file() else {}
    rasters = np.zeros((len(recordings), time_bins, 2 * NMNIST_SIZE * NMNIST_SIZE), dtype=np.uint8)
    labels = np.empty(len(recordings), dtype=np.uint8)
    for i, (path, label) in enumerate(recordings):
        relative = path.relative_to(dataset_folder).as_posix()
        if relative in expected:
            verify_sha256(path, expected[relative])
        rasters[i] = bin_nmnist(read_nmnist_events(path), time_bins, bin_width_us)
        labels[i] = label
    return rasters, labels


def nmnist_event_counts(
    split: str, data_dir: str | os.PathLike | None = None, limit: int | None = None, window_us: int = 300_000
) -> tuple[np.ndarray, np.ndarray]:
    """Events per pixel and polarity in the first ``window_us`` of each recording, not clipped:
    counts uint16 [N, 2312] (neuron index as in :func:`bin_nmnist`) and labels uint8 [N], in the
    order and with the checksums of :func:`load_nmnist` (the linear-readout floor's features)."""
    if window_us <= 0:
        raise ValueError(f"window_us must be > 0, got {window_us}")
    recordings = nmnist_files(split, data_dir)[:limit]
    dataset_folder = recordings[0][0].parent.parent.parent
    sums_path = dataset_folder / "SHA256SUMS"
    expected = _read_sha256sums(sums_path) if sums_path.is_file() else {}
    counts = np.zeros((len(recordings), 2 * NMNIST_SIZE * NMNIST_SIZE), dtype=np.uint16)
    labels = np.empty(len(recordings), dtype=np.uint8)
    for i, (path, label) in enumerate(recordings):
        relative = path.relative_to(dataset_folder).as_posix()
        if relative in expected:
            verify_sha256(path, expected[relative])
        events = read_nmnist_events(path)
        events = events[events["t_us"] < window_us]
        if events.size and max(events["x"].max(), events["y"].max()) >= NMNIST_SIZE:
            raise DatasetError(f"N-MNIST file {path} has an event outside the {NMNIST_SIZE}x{NMNIST_SIZE} sensor")
        neuron = events["p"].astype(np.int64) * NMNIST_SIZE**2 + events["y"].astype(np.int64) * NMNIST_SIZE + events["x"]
        counts[i] = np.bincount(neuron, minlength=counts.shape[1])
        labels[i] = label
    return counts, labels


# --------------------------------------------------------------------------------------------
# CIFAR-10 (binary batches)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 32, 32, 3] (RGB, height x width) and labels uint8 [N] of one binary batch."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CIFAR-10 batch {path} is missing")
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % CIFAR10_RECORD:
        raise DatasetError(
            f"CIFAR-10 batch {path} is corrupted: {raw.size} bytes is not a positive multiple of "
            f"{CIFAR10_RECORD} (one record = label + 3072 pixels)"
        )
    records = raw.reshape(-1, CIFAR10_RECORD)
    labels = records[:, 0].copy()
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
    return images, labels


def load_cifar10(split: str, data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 from its binary batches: images uint8 [N, 32, 32, 3] and labels uint8 [N].

    Reads ``<data_dir>/cifar10/`` (or ``cifar-10-batches-bin/``, the folder the canonical
    archive unpacks to): data_batch_1..5.bin for "train", test_batch.bin for "test". Every batch
    listed in the folder's SHA256SUMS is verified (``sha256sum *.bin > SHA256SUMS`` records a
    copy once it is trusted); a batch not listed there is read unverified.
    """
    if split not in CIFAR10_BATCHES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    names = CIFAR10_BATCHES[split]
    folder = _find_dataset_folder(CIFAR10_FOLDERS, data_dir, names)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DatasetError(
            f"CIFAR-10 {split} batch {folder / missing[0]} is missing: unpack {SOURCES['cifar10']} so that "
            f"<data_dir>/cifar10/ holds {', '.join(names)}, or set {ENV_DATA_DIR}"
        )
    sums_path = folder / "SHA256SUMS"
    expected = _read_sha256sums(sums_path) if sums_path.is_file() else {}
    images, labels = [], []
    for name in names:
        if name in expected:
            verify_sha256(folder / name, expected[name])
        batch_images, batch_labels = read_cifar10_batch(folder / name)
        if batch_labels.max() > 9:
            raise DatasetError(f"CIFAR-10 batch {folder / name} has label {int(batch_labels.max())}; labels are 0-9")
        images.append(batch_images)
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


# --------------------------------------------------------------------------------------------
# the datasets a config may name


@dataclass(frozen=True)
class DatasetKind:
    """A value of ``data.dataset``: its title, its reader and the shape of one sample."""

    name: str
    title: str  # for figures and tables
    #: (split, config: a runs/config.py Config) → inputs and labels of the whole split: intensities
    #: [N, n_in] in [0, 1], or spike rasters [N, T, n_in] binned with model.time_steps and model.dt
    read: Callable[[str, object], tuple[np.ndarray, np.ndarray]]
    #: (channels, height, width) of one sample, for data.shift_pixels; None: shifts are not defined
    geometry: tuple[int, int, int] | None = None
    recorded_events: bool = False  # recorded spikes, not intensities: data.intensity_scale does not apply


def _idx_intensities(dataset: str):
    def read(split: str, config) -> tuple[np.ndarray, np.ndarray]:
        images, labels = load_mnist(split, config.data.data_dir or None, dataset=dataset)
        return images_to_intensity(images.reshape(len(images), -1)), labels
    return read


def _nmnist_rasters(split: str, config) -> tuple[np.ndarray, np.ndarray]:
    return load_nmnist(split, config.data.data_dir or None, time_bins=config.model.time_steps,
                       bin_width_us=nmnist_bin_width_us(config.model.dt))


def _cifar10_intensities(split: str, config) -> tuple[np.ndarray, np.ndarray]:
    """Pixel intensities of the R, G, B planes, rate-coded like MNIST's."""
    images, labels = load_cifar10(split, config.data.data_dir or None)
    return images_to_intensity(images.reshape(len(images), -1)), labels


#: Every dataset ``data.dataset`` may name, in the order the command line lists them.
DATASETS = {kind.name: kind for kind in (
    DatasetKind("mnist", "MNIST", _idx_intensities("mnist"), geometry=(1, 28, 28)),
    DatasetKind("fashion-mnist", "Fashion-MNIST", _idx_intensities("fashion-mnist"), geometry=(1, 28, 28)),
    DatasetKind("nmnist", "N-MNIST", _nmnist_rasters, geometry=(2, NMNIST_SIZE, NMNIST_SIZE), recorded_events=True),
    DatasetKind("cifar10", "CIFAR-10", _cifar10_intensities),
)}

#: (channels, height, width) of one sample's inputs, for datasets whose samples may be shifted
#: (data.shift_pixels): image intensities [N, C·H·W] or event rasters [N, T, C·H·W].
SAMPLE_GEOMETRY = {name: kind.geometry for name, kind in DATASETS.items() if kind.geometry is not None}


@dataclass
class Dataset:
    train_inputs: np.ndarray  # [N, n_in] intensities in [0, 1], or [N, T, n_in] spike rasters
    train_labels: np.ndarray
    test_inputs: np.ndarray
    test_labels: np.ndarray
    n_classes: int = 10
    validation_inputs: np.ndarray | None = None  # held out from the training set (data.validation_samples)
    validation_labels: np.ndarray | None = None

    @property
    def is_spiking(self) -> bool:
        return self.train_inputs.ndim == 3

    @property
    def n_inputs(self) -> int:
        return self.train_inputs.shape[-1]


def load_dataset(config) -> Dataset:
    """The dataset of ``config`` (a runs/config.py Config) as its data section asks: scaled, with
    validation samples held out from the end of the training set, and cut to data.train_samples
    and data.test_samples."""
    d = config.data
    kind = DATASETS[d.dataset]  # the config parser admits only these names
    if kind.recorded_events and d.intensity_scale != 1.0:
        raise ConfigError(f"config key 'data.intensity_scale': {kind.title} is recorded events, not intensities; "
                          "leave it at 1.0")
    train, train_labels = kind.read("train", config)
    test, test_labels = kind.read("test", config)
    if d.intensity_scale != 1.0:
        train, test = train * d.intensity_scale, test * d.intensity_scale
    validation = validation_labels = None
    if d.validation_samples:
        if d.validation_samples >= len(train_labels):
            raise ConfigError(f"config key 'data.validation_samples': {d.validation_samples} leaves no training "
                              f"samples of the {len(train_labels)} in {d.dataset}")
        validation, validation_labels = train[-d.validation_samples:], np.asarray(train_labels[-d.validation_samples:], int)
        train, train_labels = train[: -d.validation_samples], train_labels[: -d.validation_samples]
    _check_counts(d, len(train_labels), len(test_labels))
    if d.train_samples:
        train, train_labels = train[: d.train_samples], train_labels[: d.train_samples]
    if d.test_samples:
        test, test_labels = test[: d.test_samples], test_labels[: d.test_samples]
    return Dataset(train, np.asarray(train_labels, int), test, np.asarray(test_labels, int),
                   validation_inputs=validation, validation_labels=validation_labels)


def encode(inputs: np.ndarray, time_steps: int, seed: int, purpose: str, first_index: int) -> np.ndarray:
    """Spike rasters [N, T, n_in] for samples first_index, first_index + 1, ... of a stream;
    rate-coded from intensities unless already spikes."""
    if inputs.ndim == 3:
        return inputs
    return encode_batch(inputs, time_steps, seed, first_index, purpose)


def _check_counts(d, n_train: int, n_test: int) -> None:
    """data.train_samples and data.test_samples within what the splits hold (0 = all)."""
    if d.train_samples > n_train:
        raise ConfigError(f"config key 'data.train_samples': {d.train_samples} asks for more than the "
                          f"{n_train} training samples of {d.dataset}"
                          + (f" left after data.validation_samples = {d.validation_samples}" if d.validation_samples else "")
                          + " (0 = all)")
    if d.test_samples > n_test:
        raise ConfigError(f"config key 'data.test_samples': {d.test_samples} asks for more than the "
                          f"{n_test} test samples of {d.dataset} (0 = all)")
