"""The dataset registry (contract/datasets.py), dataset plugins, the memory-mapped image
cache of image folders and the streamed training path (workers/engine/images.py)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract import DATASET_CLASSES, DATASET_SPECS, RunConfig, resolve_config
from contract.datasets import DatasetError, DatasetSpec, resolve_inside
from contract.plugins import load_dataset_plugins
from workers.engine.data import load_splits
from workers.engine.datasets import dataset_loader
from workers.engine.datasets import imagefolder as imagefolder_module
from workers.engine.images import DeviceImages, MemmapImages, TensorImages
from workers.engine.trainer import train

TINY_RUN = {
    "method": "simsiam",
    "train_size": 64,
    "probe_size": 64,
    "batch_size": 32,
    "epochs": 1,
    "width": 8,
    "proj_hidden_dim": 32,
    "proj_dim": 16,
    "pred_hidden_dim": 8,
    "image_size": 16,
    "lidar_every": 0,
}


def write_folder(folder: Path, per_class: int = 30, classes: int = 3) -> None:
    """Random 24 x 20 pictures, PNG and JPEG, ``classes`` sub-folders."""
    rng = np.random.default_rng(0)
    for label in range(classes):
        (folder / f"c{label}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8)
            suffix = "png" if i % 2 else "jpg"
            Image.fromarray(pixels).save(folder / f"c{label}" / f"{i:03d}.{suffix}")


def folder_config(**fields: object) -> RunConfig:
    return resolve_config(
        {"method": "simsiam", "dataset": "imagefolder", "dataset_path": "pics", **fields}
    )


def cache_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "cache").glob("*"))


# -- the registry -----------------------------------------------------------------------------


def test_every_dataset_is_declared_once_and_everything_derives_from_it() -> None:
    assert list(DATASET_CLASSES) == list(DATASET_SPECS)
    for name, spec in DATASET_SPECS.items():
        assert DATASET_CLASSES[name] == spec.num_classes
        assert callable(dataset_loader(name))  # every entry's loader imports
    schema = RunConfig.model_json_schema()["properties"]["dataset"]
    assert schema["enum"] == list(DATASET_SPECS)  # the Launch form's choices
    with pytest.raises(ValueError, match="unknown dataset 'mnist'; choose one of shapes"):
        resolve_config({"method": "simsiam", "dataset": "mnist"})
    path_datasets = [name for name, spec in DATASET_SPECS.items() if spec.takes_path]
    assert path_datasets == ["imagefolder"]
    with pytest.raises(ValueError, match="dataset 'imagefolder' needs dataset_path"):
        resolve_config({"method": "simsiam", "dataset": "imagefolder"})


def test_a_loader_disagreeing_with_the_registry_is_refused(tmp_path: Path) -> None:
    # CIFAR-10's entry declares 10 classes: an archive naming 3 is refused, naming both
    from tests.test_data import write_fake_cifar10

    write_fake_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": ["a", "b", "c"]}))
    with pytest.raises(DatasetError, match="cifar10 files name 3 classes, the registry 10"):
        load_splits(resolve_config({"method": "simsiam", "dataset": "cifar10"}), tmp_path, False)


def test_the_cache_folder_is_reserved(tmp_path: Path) -> None:
    (tmp_path / "cache" / "x").mkdir(parents=True)
    with pytest.raises(DatasetError, match="service's own files"):
        resolve_inside(tmp_path, "cache/x")


# -- the image cache --------------------------------------------------------------------------


def test_an_image_folder_is_decoded_once_into_a_memory_mapped_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_folder(tmp_path / "pics")
    config = folder_config(image_size=16, probe_size=64)
    train_a, probe_a = load_splits(config, tmp_path)
    assert isinstance(train_a.store, MemmapImages) and isinstance(probe_a.store, TensorImages)
    assert len(train_a) + len(probe_a) == 90 and len(probe_a) == 22  # 25% of 90
    [cached] = cache_files(tmp_path)
    assert cached.startswith("imagefolder-") and "-16px-" in cached and cached.endswith(".npy")
    # Pixels as decoding each file gives (RGB, shorter side to 16 px, centre crop).
    first = int(train_a.source_indices[0])
    files = sorted((tmp_path / "pics").glob("*/*"))
    expected = imagefolder_module.decode_image(files[first], 16)
    assert np.array_equal(train_a.images[0].numpy(), expected)

    def no_decoding(*_: object) -> np.ndarray:
        raise AssertionError("decoded again")

    monkeypatch.setattr(imagefolder_module, "decode_image", no_decoding)
    train_b, probe_b = load_splits(config, tmp_path)  # opened, not decoded
    assert torch.equal(train_a.images, train_b.images)
    assert torch.equal(probe_a.images, probe_b.images)
    assert torch.equal(train_a.labels, train_b.labels)


def test_a_changed_folder_invalidates_its_cache(tmp_path: Path) -> None:
    write_folder(tmp_path / "pics")
    config = folder_config(image_size=16, probe_size=64, seed=3)
    load_splits(config, tmp_path)
    [old] = cache_files(tmp_path)
    # Replace one picture by a white one, with a new modification time.
    changed = tmp_path / "pics" / "c1" / "001.png"
    Image.fromarray(np.full((20, 24, 3), 255, np.uint8)).save(changed)
    os.utime(changed, ns=(time.time_ns(), time.time_ns() + 10**9))
    train, probe = load_splits(config, tmp_path)
    [new] = cache_files(tmp_path)  # rebuilt, and the stale cache deleted
    assert new != old
    everything = torch.cat([train.images, probe.images])
    assert bool((everything == 255).flatten(1).all(1).any())
    # Another image size is another cache, beside the first.
    load_splits(folder_config(image_size=20, probe_size=64), tmp_path)
    assert len(cache_files(tmp_path)) == 2


def test_a_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    write_folder(tmp_path / "pics")
    (tmp_path / "pics" / "c0" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image 'pics/c0/broken\.png'") as error:
        load_splits(folder_config(), tmp_path)
    assert str(tmp_path) not in str(error.value)  # the run's page shows no server folder
    assert cache_files(tmp_path) == []


def test_a_file_replaced_with_its_old_size_and_time_invalidates_the_cache(tmp_path: Path) -> None:
    """``cp -p``, ``rsync -t`` or ``touch -r`` carry the modification time over: the change
    time still tells the new file from the old."""
    write_folder(tmp_path / "pics")
    config = folder_config(image_size=16, probe_size=64)
    load_splits(config, tmp_path)
    changed = tmp_path / "pics" / "c0" / "000.jpg"
    before = changed.stat()
    replacement = tmp_path / "replacement.jpg"
    Image.fromarray(np.full((20, 24, 3), 255, np.uint8)).save(replacement)
    data = replacement.read_bytes()
    changed.write_bytes(data[: before.st_size].ljust(before.st_size, b"\0"))  # same size
    os.utime(changed, ns=(before.st_atime_ns, before.st_mtime_ns))  # same time
    assert changed.stat().st_mtime_ns == before.st_mtime_ns
    [old] = cache_files(tmp_path)
    train, probe = load_splits(config, tmp_path)
    [new] = cache_files(tmp_path)
    assert new != old
    everything = torch.cat([train.images, probe.images])
    assert bool((everything > 240).flatten(1).all(1).any())  # the white picture was decoded


def test_an_image_folder_is_read_as_torchvision_reads_it(tmp_path: Path) -> None:
    """Images at any depth below their class folder, every suffix torchvision reads, names
    with a leading dot passed over (.ipynb_checkpoints, macOS's ._ files)."""
    root = tmp_path
    pixels = np.random.default_rng(0).integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    layout = {
        "cat/a.png": 1,
        "cat/2024/b.tif": 1,
        "cat/2024/deep/c.bmp": 1,
        "cat/.hidden.png": 0,
        "cat/._a.png": 0,
        "dog/d.JPG": 1,
        "dog/e.webp": 1,
        "dog/notes.txt": 0,
        ".ipynb_checkpoints/x.png": 0,
    }
    for name in layout:
        path = root / "pics" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt") or "._" in name:
            path.write_bytes(b"not an image")
        else:
            Image.fromarray(pixels).save(path, format="JPEG" if name.endswith("JPG") else None)
    os.symlink(root / "pics" / "cat", root / "pics" / "cat" / "2024" / "loop")  # a link loop
    classes, files, labels, _ = imagefolder_module.list_images(root / "pics", root)
    assert classes == ["cat", "dog"]
    assert files == [
        "cat/2024/b.tif",
        "cat/2024/deep/c.bmp",
        "cat/a.png",
        "dog/d.JPG",
        "dog/e.webp",
    ]
    assert labels == [0, 0, 0, 1, 1]


@pytest.mark.parametrize("linked", ["folder", "subfolder", "file"])
def test_an_image_reached_from_two_classes_is_refused(tmp_path: Path, linked: str) -> None:
    """A class linking to another's images would give them two labels (torchvision's
    ImageFolder lists them twice): the probe is scored against both labels and a held-out
    image is also trained on. A link inside its own class is no clash."""
    write_folder(tmp_path / "pics", per_class=2, classes=2)
    pics = tmp_path / "pics"
    os.symlink(pics / "c0" / "000.jpg", pics / "c0" / "again.jpg")  # same class: listed
    target, link = {
        "folder": (pics / "c0", pics / "c2"),
        "subfolder": (pics / "c0", pics / "c1" / "borrowed"),
        "file": (pics / "c0" / "001.png", pics / "c1" / "stray.png"),
    }[linked]
    os.symlink(target, link)
    with pytest.raises(DatasetError, match="of another class \\(a link\\)") as clash:
        imagefolder_module.list_images(pics, tmp_path)
    assert "'pics/c0/" in str(clash.value)
    link.unlink()
    _, files, labels, _ = imagefolder_module.list_images(pics, tmp_path)
    assert files.count("c0/again.jpg") == 1 and labels == [0, 0, 0, 1, 1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda pics: pics / "loose.png",
            "image folder 'pics' has images beside its class folders \\(1, e.g. 'loose.png'\\)",
        ),
        (lambda pics: pics / "tif" / "readme.txt", "class folder 'pics/tif' has no images"),
    ],
)
def test_images_that_would_not_be_trained_on_are_refused_by_name(
    tmp_path: Path, make: object, message: str
) -> None:
    write_folder(tmp_path / "pics", per_class=2)
    path = make(tmp_path / "pics")  # type: ignore[operator]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path, format="PNG")
    with pytest.raises(DatasetError, match=message):
        imagefolder_module.list_images(tmp_path / "pics", tmp_path)


def test_a_folder_it_cannot_read_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_folder(tmp_path / "pics", per_class=2)
    scandir = os.scandir

    def refuse_c1(path: object) -> object:
        if str(path).endswith("c1"):
            raise PermissionError(13, "Permission denied")
        return scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(imagefolder_module.os, "scandir", refuse_c1)
    with pytest.raises(DatasetError) as error:
        imagefolder_module.list_images(tmp_path / "pics", tmp_path)
    assert str(error.value) == "cannot read folder 'pics/c1': Permission denied"


def test_images_decode_as_a_viewer_shows_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 16-bit greyscale: scaled to 8 bits, not clipped to white
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "wide.png")
    with Image.open(tmp_path / "wide.png") as opened:
        assert opened.mode in imagefolder_module.WIDE_GREYSCALE
    decoded = imagefolder_module.decode_image(tmp_path / "wide.png", 8)
    assert np.abs(decoded[0].astype(int) - np.rint(ramp / 257).astype(int)).max() <= 1
    assert decoded.min() == 0 and 240 < decoded.max() < 255
    # float greyscale (a 32-bit TIFF) in [0, 1]: to 0..255, not black
    Image.fromarray(np.full((8, 8), 0.7, np.float32)).save(tmp_path / "float.tif")
    assert int(imagefolder_module.decode_image(tmp_path / "float.tif", 8)[0, 0, 0]) == 178
    # EXIF orientation 6 (rotate 90 degrees clockwise to view): red on the left when stored
    # red on top
    stored = np.zeros((16, 16, 3), np.uint8)
    stored[:8, :, 0] = 255
    stored[8:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    viewed = imagefolder_module.decode_image(tmp_path / "turned.jpg", 16)
    assert viewed[0, :, 12:].mean() > 200 and viewed[0, :, :4].mean() < 50  # red on the right
    # a palette image with transparency decodes without PIL's warning (in the CLI's bar)
    palette = Image.new("P", (8, 8), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    palette.save(tmp_path / "palette.png", transparency=bytes([0, 128, 255]))  # per entry
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        imagefolder_module.decode_image(tmp_path / "palette.png", 8)
    # an image past PIL's decompression-bomb limit is a dataset error naming it
    from PIL import Image as PILImage

    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 10)
    with pytest.raises(DatasetError, match=r"cannot read image 'big\.png': Image size"):
        imagefolder_module.decode_image(tmp_path / "wide.png", 8, shown="big.png")


def test_a_folder_too_small_for_a_probe_is_refused(tmp_path: Path) -> None:
    """A probe of n images has at most n - 1 directions: 4 images gave a probe of one, which
    read complete collapse from epoch 1."""
    write_folder(tmp_path / "pics", per_class=5, classes=3)
    with pytest.raises(DatasetError, match="image folder 'pics' has only 15 images: too few"):
        load_splits(folder_config(image_size=16), tmp_path)
    write_folder(tmp_path / "pics", per_class=11, classes=3)
    train, probe = load_splits(folder_config(image_size=16), tmp_path)
    assert (len(train), len(probe)) == (17, 16)  # 25% would be 8


def test_a_cache_of_the_wrong_shape_is_rebuilt(tmp_path: Path) -> None:
    write_folder(tmp_path / "pics", per_class=11)
    config = folder_config(image_size=16, probe_size=64)
    expected = load_splits(config, tmp_path)[0].images
    [name] = cache_files(tmp_path)
    # A new file in its place (overwriting a mapped file in place would pull the pages
    # from under the mapping: the cache itself only ever renames complete files there).
    (tmp_path / "cache" / name).unlink()
    np.save(tmp_path / "cache" / name, np.zeros((3, 3), np.uint8))
    again, _ = load_splits(config, tmp_path)
    assert torch.equal(expected, again.images)


# -- the streamed training path ---------------------------------------------------------------


def test_streamed_batches_equal_resident_ones(tmp_path: Path) -> None:
    array = np.lib.format.open_memmap(
        tmp_path / "x.npy", mode="w+", dtype=np.uint8, shape=(50, 3, 4, 4)
    )
    array[:] = np.random.default_rng(0).integers(0, 256, size=array.shape, dtype=np.uint8)
    store = MemmapImages(np.load(tmp_path / "x.npy", mmap_mode="r")).subset(torch.arange(49, 9, -1))
    device = torch.device("cpu")
    streamed = DeviceImages(store, device)
    resident = DeviceImages(store, device, fits=lambda *_: True)
    in_memory = DeviceImages(TensorImages(store.to_tensor()), device)
    assert streamed.resident is None and resident.resident is not None
    order = torch.randperm(40, generator=torch.Generator().manual_seed(0))
    batches = [list(images.batches(order, 16, 2)) for images in (streamed, resident, in_memory)]
    for (i_a, a), (i_b, b), (i_c, c) in zip(*batches, strict=True):
        assert torch.equal(i_a, i_b) and torch.equal(i_a, i_c)
        assert torch.equal(a, b) and torch.equal(a, c)
        assert torch.equal(a, torch.from_numpy(array[49 - i_a.numpy()]))
    assert torch.equal(streamed.read(torch.arange(40)), in_memory.read(torch.arange(40)))


@pytest.fixture
def in_memory_folder(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Image folders loaded the way they were before the cache: held in memory."""
    load = imagefolder_module.load_imagefolder
    monkeypatch.setattr(imagefolder_module, "load_imagefolder", lambda r: load(r).in_memory())
    from workers.engine import datasets

    monkeypatch.setitem(datasets._LOADERS, "imagefolder", imagefolder_module.load_imagefolder)
    yield


def run_numbers(config: RunConfig, root: Path) -> list[dict[str, object]]:
    result = train(config, data_root=root)
    drop = {"epoch_time_s", "train_time_s", "diagnostics_time_s", "lidar_time_s"}
    drop |= {"mechanisms_time_s"}  # timings differ from run to run; the numbers must not
    drop |= {"images_per_s", "placement"}
    return [{k: v for k, v in r.model_dump().items() if k not in drop} for r in result.history]


def test_training_streamed_from_the_cache_equals_training_in_memory(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    write_folder(tmp_path / "pics", per_class=40)
    config = folder_config(**{**TINY_RUN, "method": "deepcluster", "train_size": None})
    streamed = run_numbers(config, tmp_path)  # CPU: read batch by batch from the memmap
    request.getfixturevalue("in_memory_folder")
    in_memory = run_numbers(config, tmp_path)
    assert json.dumps(streamed, sort_keys=True) == json.dumps(in_memory, sort_keys=True)


# -- dataset plugins --------------------------------------------------------------------------

SPEC_HALF = """
from contract import DatasetSpec

DATASET_SPEC = DatasetSpec(
    name="bars", title="Bars", loader="bars_loader:load_bars", probe="held_out",
    class_names=("horizontal", "vertical"),
)
"""
LOADER_HALF = """
import torch
from workers.engine.images import ImageData

def load_bars(request):
    size = request.config.image_size
    images = torch.zeros(200, 3, size, size, dtype=torch.uint8)
    labels = torch.arange(200) % 2
    generator = torch.Generator().manual_seed(0)
    for i in range(200):
        at = int(torch.randint(0, size - 3, (1,), generator=generator))
        if labels[i] == 0:
            images[i, :, at : at + 3, :] = 255
        else:
            images[i, :, :, at : at + 3] = 255
    return ImageData.from_tensor(images, labels, list(request.spec.class_names))
"""
BROKEN_PLUGINS = {
    "bars_clash": "from contract import DATASET_SPECS\n"
    "from contract.datasets import BUILTIN_DATASETS\nDATASET_SPEC = BUILTIN_DATASETS[0]\n",
    "bars_badname": "from contract import DatasetSpec\n"
    "DATASET_SPEC = DatasetSpec(name='Bad Name', title='t', loader='a:b', probe='held_out')\n",
    "bars_badrule": "from contract import DatasetSpec\n"
    "DATASET_SPEC = DatasetSpec(name='rule', title='t', loader='a:b', probe='sometimes')\n",
    "bars_empty": "X = 1\n",
    "bars_import": "import not_a_module_anywhere\n",
}


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "plugins"
    folder.mkdir()
    sources = {"bars_spec": SPEC_HALF, "bars_loader": LOADER_HALF, **BROKEN_PLUGINS}
    for name, text in sources.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(text))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))
    for name in sources:
        sys.modules.pop(name, None)


def test_dataset_plugins_load_and_broken_ones_are_reported_by_name(plugin_dir: Path) -> None:
    plugins = load_dataset_plugins(set(DATASET_SPECS), ",".join(["bars_spec", *BROKEN_PLUGINS]))
    assert [(plugin, spec.name) for plugin, spec in plugins.datasets] == [("bars_spec", "bars")]
    assert plugins.datasets[0][1].num_classes == 2
    errors = {e.plugin: e.error for e in plugins.errors}
    assert "dataset name 'shapes' is already taken" in errors["bars_clash"]
    assert "dataset name 'Bad Name' must be lower case" in errors["bars_badname"]
    assert "probe 'sometimes' is not one of" in errors["bars_badrule"]
    assert "neither DATASET_SPEC nor DATASET_SPECS" in errors["bars_empty"]
    assert errors["bars_import"].startswith("ModuleNotFoundError")


def test_a_dataset_plugin_trains_from_the_command_line(plugin_dir: Path, tmp_path: Path) -> None:
    """DATASET_PLUGINS names the torch-free half; the run config takes the new name and
    the worker imports the loader its entry names."""
    here = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "DATASET_PLUGINS": "bars_spec",
        "PYTHONPATH": os.pathsep.join([str(plugin_dir), str(here), str(here / "client")]),
        "DATA_DIR": str(tmp_path / "data"),
    }
    sets = [f"{key}={value}" for key, value in TINY_RUN.items() if key != "method"]
    command = [sys.executable, "-m", "workers.cli", "train", "--method", "simsiam"]
    command += ["--dataset", "bars", "--jsonl", str(tmp_path / "run.jsonl")]
    command += [arg for pair in sets for arg in ("--set", pair)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records[:-1]] == [0, 1]
    assert records[-1]["verdict"]["kind"] in {
        "healthy",
        "dimensional_collapse",
        "complete_collapse",
    }
    # the probe is the held-out 25% of 200 (probe_size 64 < 50), classes from the entry
    assert records[0]["projector"]["knn_top1"] is not None
    assert "simsiam on bars" in done.stdout


def test_a_dataset_spec_is_checked_like_a_plugin() -> None:
    spec = DatasetSpec(name="x", title="x", loader="no_such_module:load", probe="held_out")
    from workers.engine import datasets

    DATASET_SPECS["x"] = spec
    try:
        with pytest.raises(DatasetError, match="x: cannot import its loader no_such_module:load"):
            datasets.dataset_loader("x")
    finally:
        del DATASET_SPECS["x"]


def test_an_image_folder_error_names_paths_inside_the_data_root_only(tmp_path: Path) -> None:
    """A run's error is shown on its page: a link leading out of the data root, or a folder
    without classes, is named by its path in the root, never by the server's folders."""
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    (root / "photos" / "cats").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (8, 8)).save(outside / "cat.png")
    os.symlink(outside / "cat.png", root / "photos" / "cats" / "cat.png")
    with pytest.raises(DatasetError) as leaving:
        imagefolder_module.list_images(root / "photos", root)
    assert "'photos/cats/cat.png' is a link leading outside the data root" in str(leaving.value)
    (root / "empty").mkdir()
    with pytest.raises(DatasetError) as empty:
        imagefolder_module.list_images(root / "empty", root)
    assert str(empty.value) == "image folder 'empty' has no class subfolders"
    assert str(tmp_path) not in str(leaving.value) + str(empty.value)


def test_a_file_name_that_is_not_utf8_is_read(tmp_path: Path) -> None:
    """Names are bytes on Linux: one that is no UTF-8 (a copy from an old Windows share)
    reaches Python with surrogates, which the cache signature encoded as UTF-8 and failed."""
    write_folder(tmp_path / "pics", per_class=11)
    raw = os.fsencode(tmp_path / "pics" / "c0") + b"/\xff\xfe.png"
    Image.new("RGB", (20, 24), (255, 0, 0)).save(os.fsdecode(raw), format="PNG")
    train, probe = load_splits(folder_config(image_size=16, probe_size=64), tmp_path)
    assert len(train) + len(probe) == 34
