"""Datasets (shapes, digits, CIFAR layout, image folders) and the batched augmentations."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from contract import DATASET_CLASSES, RunConfig, resolve_config
from contract.datasets import DatasetError, resolve_inside
from workers.engine.augment import IMAGENET_MEAN, IMAGENET_STD, BatchAugment, normalize
from workers.engine.data import load_splits, stratified_order
from workers.engine.datasets import archives
from workers.engine.datasets.shapes import render_shapes
from workers.engine.images import ImageData


def make_config(**fields: object) -> RunConfig:
    return resolve_config({"method": "simsiam", **fields})


def image_hashes(data: ImageData) -> set[bytes]:
    return {bytes(image.numpy().tobytes()) for image in data.images}


# -- shapes -----------------------------------------------------------------------------------


def test_shapes_rendering_is_deterministic_given_the_seed() -> None:
    first, first_labels = render_shapes(64, 32, torch.Generator().manual_seed(3))
    again, again_labels = render_shapes(64, 32, torch.Generator().manual_seed(3))
    other, _ = render_shapes(64, 32, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and torch.equal(first_labels, again_labels)
    assert not torch.equal(first, other)


def test_shapes_splits_have_balanced_labels_and_disjoint_probe() -> None:
    train, probe = load_splits(
        make_config(dataset="shapes", train_size=1000, probe_size=300, seed=1), Path("unused")
    )
    assert train.images.shape == (1000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert probe.images.shape == (300, 3, 32, 32)
    assert train.labels.dtype == torch.int64 and train.num_classes == 10
    assert len(train.class_names) == 10
    counts = torch.bincount(train.labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert not image_hashes(train) & image_hashes(probe)
    assert not set(train.source_indices.tolist()) & set(probe.source_indices.tolist())


def test_shapes_vary_in_colour_position_and_background() -> None:
    images, labels = render_shapes(200, 32, torch.Generator().manual_seed(0))
    pixels = images.float()
    corner_colours = pixels[:, :, 0, 0]  # background
    assert corner_colours.std(dim=0).min() > 30  # backgrounds differ between images
    # Within one image the shape stands out: a wide range of pixel values.
    spread = pixels.amax(dim=(1, 2, 3)) - pixels.amin(dim=(1, 2, 3))
    assert spread.min() > 40
    # Same class, different images: not identical pictures.
    disks = images[labels == 0]
    assert (disks[0].float() - disks[1].float()).abs().mean() > 10


def test_shapes_default_train_size_and_image_size() -> None:
    train, probe = load_splits(
        make_config(dataset="shapes", image_size=48, probe_size=128), Path("unused")
    )
    assert train.images.shape == (8192, 3, 48, 48)
    assert probe.images.shape == (128, 3, 48, 48)


# -- digits -----------------------------------------------------------------------------------


def test_digits_probe_is_a_stratified_disjoint_held_out_part() -> None:
    train, probe = load_splits(make_config(dataset="digits", seed=0), Path("unused"))
    assert len(probe) == int(1797 * 0.25)  # probe_size 2048 capped at 25% of the data
    assert len(train) + len(probe) == 1797
    train_ids, probe_ids = set(train.source_indices.tolist()), set(probe.source_indices.tolist())
    assert not train_ids & probe_ids
    assert train_ids | probe_ids == set(range(1797))
    per_class = torch.bincount(probe.labels, minlength=10)
    assert per_class.min() >= 43 and per_class.max() <= 47  # ~10% of 449 each
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.equal(train.images[:, 0], train.images[:, 2])  # gray replicated to RGB
    assert train.images.max() >= 250  # full 0..255 range after upscaling 0..16


def test_digits_split_depends_on_seed_and_respects_train_size() -> None:
    _, probe_a = load_splits(make_config(dataset="digits", seed=0), Path("unused"))
    _, probe_b = load_splits(make_config(dataset="digits", seed=0), Path("unused"))
    train_c, probe_c = load_splits(
        make_config(dataset="digits", seed=5, train_size=500, probe_size=100), Path("unused")
    )
    assert torch.equal(probe_a.source_indices, probe_b.source_indices)
    assert len(train_c) == 500 and len(probe_c) == 100
    assert set(probe_c.source_indices.tolist()) != set(probe_a.source_indices[:100].tolist())
    assert not set(train_c.source_indices.tolist()) & set(probe_c.source_indices.tolist())


def test_stratified_order_prefixes_follow_class_shares() -> None:
    labels = torch.tensor([0] * 80 + [1] * 20)
    order = stratified_order(labels, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(100))
    prefix = labels[order[:10]]
    assert int((prefix == 1).sum()) == 2


# -- CIFAR layout (built locally, no network) -------------------------------------------------


def write_fake_cifar10(root: Path, per_batch: int = 20, test_count: int = 30) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, count in [
        *((f"data_batch_{i}", per_batch) for i in range(1, 6)),
        ("test_batch", test_count),
    ]:
        batch = {
            "data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            "labels": [int(v) for v in rng.integers(0, 10, size=count)],
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle)
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    with (folder / "batches.meta").open("wb") as handle:
        pickle.dump(meta, handle)


def test_fake_cifar10_loads_without_download(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path)
    config = make_config(dataset="cifar10", probe_size=64, seed=2)
    train, probe = load_splits(config, tmp_path, download=False)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert len(probe) == 30  # the whole (small) test split
    assert train.class_names == [f"class{i}" for i in range(10)]
    assert DATASET_CLASSES["cifar10"] == train.num_classes
    # Pixel layout: row-major (3, 32, 32) as in the official archive.
    with (tmp_path / "cifar-10-batches-py" / "data_batch_1").open("rb") as handle:
        first = pickle.load(handle)["data"][0]
    assert torch.equal(train.images[0].flatten(), torch.from_numpy(first))


def test_fake_cifar10_is_resized_to_the_image_size(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path)
    train, probe = load_splits(
        make_config(dataset="cifar10", image_size=64, probe_size=64), tmp_path, download=False
    )
    assert train.images.shape == (100, 3, 64, 64) and probe.images.shape == (30, 3, 64, 64)


def test_fake_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for name, count in (("train", 40), ("test", 20)):
        batch = {
            "data": rng.integers(0, 256, size=(count, 3072), dtype=np.uint8),
            "fine_labels": [i % 100 for i in range(count)],
            "coarse_labels": [0] * count,
        }
        with (folder / name).open("wb") as handle:
            pickle.dump(batch, handle)
    with (folder / "meta").open("wb") as handle:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, handle)
    train, probe = load_splits(
        make_config(dataset="cifar100", probe_size=64), tmp_path, download=False
    )
    assert train.num_classes == 100 and len(train) == 40 and len(probe) == 20
    assert sorted(train.labels.tolist()) == list(range(40))
    assert DATASET_CLASSES["cifar100"] == train.num_classes


@pytest.mark.parametrize("dataset", ["shapes", "digits"])
def test_the_api_class_counts_match_the_loaded_datasets(dataset: str) -> None:
    train, _ = load_splits(make_config(dataset=dataset, train_size=200), Path("unused"))
    assert DATASET_CLASSES[dataset] == train.num_classes


def test_fake_stl10_binary_layout_loads(tmp_path: Path) -> None:
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    for split, count in (("train", 12), ("test", 8)):
        # Column-major images as in the official files: stored (N, 3, W, H).
        pixels = rng.integers(0, 256, size=(count, 3, 96, 96), dtype=np.uint8)
        pixels.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")
        np.arange(1, count + 1, dtype=np.uint8).clip(max=10).tofile(folder / f"{split}_y.bin")
        if split == "train":
            first_image = pixels[0]
    (folder / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    train, probe = load_splits(
        make_config(dataset="stl10", image_size=96, probe_size=64), tmp_path, download=False
    )
    assert train.images.shape == (12, 3, 96, 96) and len(probe) == 8
    assert train.labels.min() == 0 and train.labels.max() == 9  # 1-based on disk
    assert train.class_names[0] == "k0" and train.num_classes == 10
    assert torch.equal(train.images[0], torch.from_numpy(first_image))


def write_idx(path: Path, array: np.ndarray) -> None:
    """``array`` in the IDX format of MNIST's files: a magic number (uint8, the rank), each
    dimension as a big-endian int32, then the bytes."""
    header = np.array([0x0800 + array.ndim, *array.shape], dtype=">i4")
    path.write_bytes(header.tobytes() + array.astype(np.uint8).tobytes())


def test_fake_fashion_mnist_loads_from_torchvisions_raw_files(tmp_path: Path) -> None:
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for prefix, count in (("train", 40), ("t10k", 30)):
        pixels = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", pixels)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 10)
        if prefix == "train":
            first_image = pixels[0]
    train, probe = load_splits(
        make_config(dataset="fashion_mnist", image_size=28, probe_size=64), tmp_path, False
    )
    assert train.images.shape == (40, 3, 28, 28) and len(probe) == 30  # the whole test split
    assert train.class_names[0] == "T-shirt/top" and train.num_classes == 10
    assert DATASET_CLASSES["fashion_mnist"] == train.num_classes
    # grey, replicated to 3 channels
    assert torch.equal(train.images[0], torch.from_numpy(first_image).expand(3, -1, -1))
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte"):
        load_splits(make_config(dataset="fashion_mnist"), tmp_path, download=False)


def test_missing_dataset_without_download_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"cifar100 is not in .*downloading is disabled"):
        load_splits(make_config(dataset="cifar100"), tmp_path, download=False)


@pytest.mark.parametrize(
    ("dataset", "split"),
    [
        ("cifar10", {"train": True}),
        ("stl10", {"split": "train"}),
        ("fashion_mnist", {"train": True}),
    ],
)
def test_a_missing_archive_is_downloaded_with_its_own_split_keyword(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, split: dict[str, object]
) -> None:
    calls = []

    def offline(root: Path, **kwargs: object) -> None:
        calls.append(kwargs)
        raise OSError("no network")

    archive = getattr(archives, dataset.upper())
    monkeypatch.setattr(archives, dataset.upper(), dataclasses.replace(archive, stock=offline))
    with pytest.raises(DatasetError, match=f"could not download {dataset} into .*: no network"):
        load_splits(make_config(dataset=dataset), tmp_path, download=True)
    assert calls == [{**split, "download": True}]


# -- image folder -----------------------------------------------------------------------------


def write_image_folder(folder: Path, per_class: int = 16) -> None:
    for class_index, name in enumerate(["cat", "dog", "eel"]):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((20, 28, 3), 40 * class_index + i, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i}.png")
    (folder / "cat" / "notes.txt").write_text("not an image")


def test_image_folder_loads_classes_from_subfolders(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets")
    train, probe = load_splits(
        make_config(dataset="imagefolder", dataset_path="pets", image_size=16), tmp_path
    )
    assert train.class_names == ["cat", "dog", "eel"] and train.num_classes == 3
    assert len(train) + len(probe) == 48 and len(probe) == 16  # the least probe (25%: 12)
    assert train.images.shape[1:] == (3, 16, 16)
    assert not set(train.source_indices.tolist()) & set(probe.source_indices.tolist())
    # Labels follow folders: "dog" images are the uniform value 40 + i.
    dogs = train.images[train.labels == 1]
    assert (
        (dogs.float().mean(dim=(1, 2, 3)) >= 40) & (dogs.float().mean(dim=(1, 2, 3)) < 56)
    ).all()


@pytest.mark.parametrize("path", ["../outside", "/etc", "pets/../../outside"])
def test_image_folder_refuses_paths_outside_the_data_root(tmp_path: Path, path: str) -> None:
    root = tmp_path / "root"
    write_image_folder(root / "pets")
    write_image_folder(tmp_path / "outside")
    with pytest.raises(DatasetError, match=r"relative|'\.\.'|outside"):
        load_splits(make_config(dataset="imagefolder", dataset_path=path), root)


def test_image_folder_refuses_symlinks_escaping_the_data_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_image_folder(tmp_path / "outside")
    os.symlink(tmp_path / "outside", root / "sneaky")
    with pytest.raises(DatasetError, match="outside the data directory"):
        load_splits(make_config(dataset="imagefolder", dataset_path="sneaky"), root)
    # A link to one outside file inside an otherwise legal folder is refused too.
    write_image_folder(root / "pets")
    os.symlink(tmp_path / "outside" / "cat" / "0.png", root / "pets" / "dog" / "linked.png")
    assert resolve_inside(root, "pets") == (root / "pets").resolve()  # the folder is fine ...
    with pytest.raises(DatasetError, match="outside the data root"):  # ... its link is not
        load_splits(make_config(dataset="imagefolder", dataset_path="pets"), root)


def test_image_folder_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_splits(make_config(dataset="imagefolder", dataset_path="nothing"), tmp_path)


# -- augmentations ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shape_batch() -> torch.Tensor:
    images, _ = render_shapes(64, 32, torch.Generator().manual_seed(0))
    return images


def test_augment_output_shape_dtype_and_range(shape_batch: torch.Tensor) -> None:
    augment = BatchAugment(32, 3, 1.0)
    out = augment(shape_batch, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 32, 32) and out.dtype == torch.float32
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    unit = out * std + mean
    assert unit.min() >= -1e-5 and unit.max() <= 1 + 1e-5
    assert torch.isfinite(out).all()
    for size in (16, 48):
        assert augment(shape_batch, torch.Generator().manual_seed(0), out_size=size).shape == (
            64,
            3,
            size,
            size,
        )


def test_augment_is_reproducible_from_the_generator(shape_batch: torch.Tensor) -> None:
    augment = BatchAugment(32, 3, 1.0)
    a = augment(shape_batch, torch.Generator().manual_seed(7))
    b = augment(shape_batch, torch.Generator().manual_seed(7))
    c = augment(shape_batch, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    # Resuming from a saved generator state gives the same next batch.
    generator = torch.Generator().manual_seed(1)
    augment(shape_batch, generator)
    state = generator.get_state()
    next_batch = augment(shape_batch, generator)
    generator.set_state(state)
    assert torch.equal(augment(shape_batch, generator), next_batch)


def test_strength_zero_is_plain_normalisation(shape_batch: torch.Tensor) -> None:
    out = BatchAugment(32, 3, 0.0)(shape_batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, normalize(shape_batch))
    expected = (shape_batch.float() / 255 - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / (
        torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    )
    assert torch.allclose(normalize(shape_batch), expected, atol=1e-5)


def test_flip_happens_for_some_samples() -> None:
    # Dark left half, bright right half, gray: jitter keeps the order, only flips swap it.
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[..., 16:] = 255
    batch = image.expand(200, -1, -1, -1).contiguous()
    out = BatchAugment(32, 3, 1.0)(batch, torch.Generator().manual_seed(0), scale=(0.9, 1.0))
    right_minus_left = out[..., 16:].mean(dim=(1, 2, 3)) - out[..., :16].mean(dim=(1, 2, 3))
    flipped = float((right_minus_left < 0).float().mean())
    assert 0.35 < flipped < 0.65


def test_crops_differ_per_sample() -> None:
    # Horizontal ramp: a crop's left-to-right span reveals its box.
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    batch = ramp.view(1, 1, 1, 32).expand(50, 3, 32, 32).contiguous()
    augment = BatchAugment(32, 3, 1.0)
    augment.jitter_probability = 0.0
    augment.gray_probability = 0.0
    out = augment(batch, torch.Generator().manual_seed(0))
    span = (out[..., -1] - out[..., 0]).abs().mean(dim=(1, 2))
    assert span.std() > 0.2  # different crop widths
    assert len({round(v, 4) for v in span.tolist()}) > 40
    # Smaller minimum crop area -> smaller spans on average.
    narrow = augment(batch, torch.Generator().manual_seed(0), scale=(0.05, 0.1))
    assert (narrow[..., -1] - narrow[..., 0]).abs().mean() < span.mean()


def test_colour_jitter_and_grayscale_rates(shape_batch: torch.Tensor) -> None:
    batch = shape_batch.repeat(8, 1, 1, 1)  # 512 samples
    augment = BatchAugment(32, 3, 1.0)
    out = augment(batch, torch.Generator().manual_seed(0))
    unit = out * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(
        1, 3, 1, 1
    )
    gray = (unit.amax(dim=1) - unit.amin(dim=1)).amax(dim=(1, 2)) < 1e-4
    assert 0.12 < float(gray.float().mean()) < 0.28  # p = 0.2
    # Stronger augmentation moves mean colours further from the originals.
    geometric = BatchAugment(32, 3, 1.0)
    geometric.jitter_probability = geometric.gray_probability = 0.0
    plain = geometric(batch, torch.Generator().manual_seed(0))
    assert (out.mean(dim=(2, 3)) - plain.mean(dim=(2, 3))).abs().mean() > 0.05


def test_colour_jitter_keeps_gray_images_gray() -> None:
    # Hue rotation and saturation act on chroma only: a gray picture stays gray.
    gray = torch.randint(0, 256, (64, 1, 32, 32), dtype=torch.uint8).expand(-1, 3, -1, -1)
    out = BatchAugment(32, 3, 1.0)(gray.contiguous(), torch.Generator().manual_seed(0))
    unit = out * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(
        1, 3, 1, 1
    )
    assert (unit.amax(dim=1) - unit.amin(dim=1)).max() < 1e-4


def test_blur_smooths_images_and_is_off_at_32px(shape_batch: torch.Tensor) -> None:
    sharp = BatchAugment(32, 3, 1.0, blur_probability=0.0)(
        shape_batch, torch.Generator().manual_seed(0), out_size=64
    )
    blurred = BatchAugment(32, 3, 1.0, blur_probability=1.0)(
        shape_batch, torch.Generator().manual_seed(0), out_size=64
    )

    def total_variation(x: torch.Tensor) -> torch.Tensor:
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (
            x[..., 1:] - x[..., :-1]
        ).abs().mean()

    assert total_variation(blurred) < 0.8 * total_variation(sharp)
    assert BatchAugment(32, 3, 1.0).blur_probability is None  # default: decided by size
    same_a = BatchAugment(32, 3, 1.0)(shape_batch, torch.Generator().manual_seed(0))
    same_b = BatchAugment(32, 3, 1.0, blur_probability=0.0)(
        shape_batch, torch.Generator().manual_seed(0)
    )
    assert torch.equal(same_a, same_b)  # no blur at 32 px by default


def test_single_channel_images_are_supported() -> None:
    batch = torch.randint(0, 256, (8, 1, 32, 32), dtype=torch.uint8)
    out = BatchAugment(32, 1, 1.0)(batch, torch.Generator().manual_seed(0))
    assert out.shape == (8, 1, 32, 32) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="channels"):
        BatchAugment(32, 3, 1.0)(batch, torch.Generator().manual_seed(0))


def test_image_folder_unreadable_image_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "pets")
    (tmp_path / "pets" / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"cannot read image .*broken\.png"):
        load_splits(make_config(dataset="imagefolder", dataset_path="pets"), tmp_path)


def test_crop_only_views_keep_colours_and_orientation() -> None:
    """I-JEPA's views (photometric=False): no flip, jitter, grayscale or blur, only the
    crop; a dark-left, red-right picture keeps its sides and its colours."""
    image = torch.zeros(1, 3, 32, 32, dtype=torch.uint8)
    image[:, 0, :, 16:] = 255  # red on the right
    batch = image.expand(200, -1, -1, -1).contiguous()
    crop_only = BatchAugment(64, 3, 1.0, photometric=False)
    out = crop_only(batch, torch.Generator().manual_seed(0), scale=(0.9, 1.0), out_size=64)
    unit = out * torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(
        1, 3, 1, 1
    )
    assert bool((unit[:, 0, :, -4:] > 0.99).all())  # every view red on the right: unflipped
    assert float(unit[:, 1:].abs().max()) < 1e-4  # no green or blue: no jitter, no grayscale
    full = BatchAugment(64, 3, 1.0)(batch, torch.Generator().manual_seed(0), scale=(0.9, 1.0))
    assert not torch.allclose(full, out[..., ::2, ::2], atol=0.1)  # the default recipe does


def test_local_crops_stay_local_at_any_strength() -> None:
    """A local crop covers 5-40% of the image whatever the strength above 0 (at 0.5 the
    range had moved to 52-70%): the span of a horizontal ramp measures the crop's width."""
    ramp = torch.linspace(0, 255, 64).round().to(torch.uint8)
    batch = ramp.view(1, 1, 1, 64).expand(400, 3, 64, 64).contiguous()

    def widths(strength: float, fixed: bool) -> torch.Tensor:
        augment = BatchAugment(64, 3, strength, photometric=False)
        out = augment(batch, torch.Generator().manual_seed(0), 32, (0.05, 0.4), scale_fixed=fixed)
        unit = out[:, 0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        return (unit[..., -1] - unit[..., 0]).mean(dim=1)  # fraction of the side spanned

    fixed, moving = widths(0.5, True), widths(0.5, False)
    assert float(fixed.max()) < 0.8  # sqrt(0.4 x 4/3) = 0.73 of the side at the most
    assert torch.allclose(fixed, widths(1.0, True))  # the strength no longer moves it
    assert float(moving.min()) > 0.55  # the area range 0.52-0.70 of before
