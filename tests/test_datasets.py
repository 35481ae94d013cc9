"""The dataset loaders: MNIST and Fashion-MNIST from IDX files written here, MNIST-1D generated small."""
import random
import sys
from importlib import metadata

import numpy as np
import pytest

import nkernels as nk
from nkernels.datasets import idx, mnist1d
from idx_files import idx_bytes, write, write_mnist_folder


@pytest.fixture
def idx_folder(tmp_path):
    """A tiny MNIST folder: 12 training and 5 test images, the training files gzipped, the test files plain."""
    return tmp_path, write_mnist_folder(tmp_path)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_idx_datasets_load_plain_and_gzipped_files_scaled_to_0_1(idx_folder, name):
    folder, arrays = idx_folder
    X, y, X_test, y_test = nk.datasets.load(name, path=folder)
    assert X.dtype == X_test.dtype == np.float32 and X.shape == (12, 784) and X_test.shape == (5, 784)
    assert y.dtype == np.int64 and y.tolist() == arrays["train"][1].tolist()
    assert y_test.tolist() == [9, 0, 3, 3, 7]
    np.testing.assert_array_equal(X, arrays["train"][0].reshape(12, 784).astype(np.float32) / np.float32(255))
    images, _, images_test, _ = nk.datasets.load(name, path=str(folder), flat=False)
    assert images.shape == (12, 1, 28, 28) and images_test.shape == (5, 1, 28, 28)
    np.testing.assert_array_equal(images.reshape(12, -1), X)


def test_a_file_named_gz_but_already_unpacked_is_read(idx_folder):
    folder, _ = idx_folder
    plain = (folder / "t10k-labels-idx1-ubyte").read_bytes()
    (folder / "t10k-labels-idx1-ubyte").unlink()
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(plain)
    assert nk.datasets.load("mnist", path=folder)[3].tolist() == [9, 0, 3, 3, 7]


def test_a_missing_path_folder_or_file_says_what_to_download_and_where_to_put_it(idx_folder):
    with pytest.raises(ValueError, match=r"needs path=DIR .*--data-path.*train-images-idx3-ubyte\.gz.*https://"):
        nk.datasets.load("mnist")
    with pytest.raises(ValueError, match="Fashion-MNIST.*zalandoresearch"):
        nk.datasets.load("fashion-mnist")
    folder, _ = idx_folder
    with pytest.raises(FileNotFoundError, match="does not exist: download MNIST"):
        nk.datasets.load("mnist", path=folder / "nowhere")
    with pytest.raises(FileNotFoundError, match="is a file, not a folder"):
        nk.datasets.load("mnist", path=folder / "t10k-images-idx3-ubyte")
    (folder / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no t10k-images-idx3-ubyte \(nor t10k-images-idx3-ubyte\.gz\)"):
        nk.datasets.load("mnist", path=folder)


def break_file(folder, name, payload: bytes, gz: bool = False):
    for existing in (folder / name, folder / (name + ".gz")):
        existing.unlink(missing_ok=True)
    write(folder, name, payload, gz)


IMAGES = np.zeros((5, 28, 28), np.uint8)


@pytest.mark.parametrize("name, payload, message", [
    ("t10k-images-idx3-ubyte", idx_bytes(np.zeros(5, np.uint8)),
     r"magic number 2049 \(uint8, 1 dimension\), expected 2051 \(uint8, 3 dimensions\)"),
    ("t10k-labels-idx1-ubyte", idx_bytes(IMAGES), r"magic number 2051 .*, expected 2049"),
    ("t10k-images-idx3-ubyte", idx_bytes(IMAGES)[:-10], r"5 x 28 x 28 values .*3,920 bytes after the header.* holds 3,910; cut short"),
    ("t10k-images-idx3-ubyte", idx_bytes(IMAGES) + b"\0", "holds 3,921; extra bytes"),
    ("t10k-images-idx3-ubyte", idx_bytes(np.zeros((5, 32, 32), np.uint8)), "images of 32x32 pixels, expected 28x28"),
    ("t10k-images-idx3-ubyte", b"\x89PNG\r\n\x1a\n" + bytes(100), "not an IDX file: its first 4 bytes are 89504e47"),
    ("t10k-images-idx3-ubyte", b"\0\0", "2 bytes, too short for an IDX header"),
    ("t10k-images-idx3-ubyte", (2051).to_bytes(4, "big") + bytes(6), "names 3 dimensions .* holds 10 bytes"),
    ("t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)), "holds 4 labels but .* holds 5 images"),
    ("t10k-labels-idx1-ubyte", idx_bytes(np.array([0, 1, 10, 2, 3])), "label 10 at index 2, expected classes 0-9"),
], ids=["labels-as-images", "images-as-labels", "cut-short", "extra-bytes", "32x32", "not-idx", "no-header",
        "short-header", "fewer-labels", "label-10"])
def test_a_broken_file_is_refused_naming_it_and_what_was_expected(idx_folder, name, payload, message):
    folder, _ = idx_folder
    break_file(folder, name, payload)
    with pytest.raises(ValueError, match=message) as error:
        nk.datasets.load("mnist", path=folder)
    assert str(folder / name) in str(error.value)


def test_a_damaged_gzip_file_is_refused_naming_it(idx_folder):
    folder, _ = idx_folder
    packed = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(packed[:len(packed) // 2])
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: a damaged or incomplete gzip file"):
        nk.datasets.load("mnist", path=folder)


def test_read_idx_reads_every_type_in_native_byte_order(tmp_path):
    values = np.array([[1.5, -2.0], [3.25, 1e6]])
    for code, dtype in idx.IDX_DTYPES.items():
        array = values.astype(dtype) if dtype.kind == "f" else np.array([[1, 2], [3, 100]], dtype)
        path = write(tmp_path, f"x{code}", (code << 8 | 2).to_bytes(4, "big") + (2).to_bytes(4, "big") * 2
                     + array.tobytes())
        read = idx.read_idx(str(path))
        assert read.dtype.isnative and read.dtype == dtype.newbyteorder("=")
        np.testing.assert_array_equal(read, array)


def test_load_refuses_an_option_the_loader_does_not_take():
    with pytest.raises(TypeError, match="dataset 'mnist' takes no option seed; its options: path, flat"):
        nk.datasets.load("mnist", seed=0)
    with pytest.raises(TypeError, match="dataset 'digits' takes no option path; its options: flat, seed"):
        nk.datasets.load("digits", path="/data")


# --- MNIST-1D -------------------------------------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path))
    return tmp_path


def test_mnist1d_is_generated_once_then_read_from_the_cache(cache, monkeypatch):
    pytest.importorskip("mnist1d", reason="the generator of MNIST-1D, in the test extra: pip install -e '.[test]'")
    np.random.seed(7)
    random.seed(7)
    numpy_state, python_draw = np.random.get_state()[1].copy(), random.random()
    random.seed(7)
    X, y, X_test, y_test = nk.datasets.load("mnist1d", n_samples=100, seed=3)
    # the generator seeds the global generators: they are restored
    assert np.array_equal(np.random.get_state()[1], numpy_state) and random.random() == python_draw
    assert X.dtype == X_test.dtype == np.float32 and X.shape == (80, 40) and X_test.shape == (20, 40)
    assert y.dtype == np.int64 and np.bincount(np.concatenate([y, y_test])).tolist() == [10] * 10
    assert abs(float(np.concatenate([X, X_test]).mean())) < 1e-5  # the generator centres the whole set
    (cached,) = (cache / "datasets").glob("mnist1d-*-n100-seed3.npz")
    assert metadata.version("mnist1d") in cached.name

    def generator_called(n_samples, seed):
        raise AssertionError("generated again instead of read from the cache")

    monkeypatch.setattr(mnist1d, "_generate", generator_called)
    images, y2, images_test, _ = nk.datasets.load("mnist1d", flat=False, n_samples=100, seed=3)
    assert images.shape == (80, 1, 40) and images_test.shape == (20, 1, 40)
    np.testing.assert_array_equal(images.reshape(80, 40), X)
    np.testing.assert_array_equal(y2, y)


def test_mnist1d_is_deterministic_for_a_seed_and_differs_between_seeds(tmp_path, monkeypatch):
    pytest.importorskip("mnist1d", reason="the generator of MNIST-1D, in the test extra: pip install -e '.[test]'")
    loads = []
    for folder, seed in [("a", 1), ("b", 1), ("c", 2)]:  # a fresh cache each time: generated each time
        monkeypatch.setenv("NKERNELS_CACHE_DIR", str(tmp_path / folder))
        loads.append(nk.datasets.load("mnist1d", n_samples=50, seed=seed))
    for first, again in zip(loads[0], loads[1]):
        np.testing.assert_array_equal(first, again)
    assert not np.array_equal(loads[0][0], loads[2][0])


def fake_generator(n_samples, seed):
    rng = np.random.default_rng(seed)
    n_train = int(n_samples * mnist1d.TRAIN_SPLIT)
    return {"X_train": rng.standard_normal((n_train, 40), dtype=np.float32), "y_train": np.arange(n_train) % 10,
            "X_test": rng.standard_normal((n_samples - n_train, 40), dtype=np.float32),
            "y_test": np.arange(n_samples - n_train) % 10}


def test_a_damaged_mnist1d_cache_file_is_generated_again(cache, monkeypatch):
    monkeypatch.setattr(mnist1d, "_generator_version", lambda: "9.9")
    monkeypatch.setattr(mnist1d, "_generate", fake_generator)
    path = cache / "datasets" / "mnist1d-9.9-n20-seed0.npz"
    path.parent.mkdir()
    path.write_bytes(b"PK\x03\x04 cut short")
    X = nk.datasets.load("mnist1d", n_samples=20, seed=0)[0]
    np.testing.assert_array_equal(X, fake_generator(20, 0)["X_train"])
    with np.load(path) as stored:  # rewritten whole
        np.testing.assert_array_equal(stored["X_train"], X)


def test_an_unwritable_mnist1d_cache_warns_and_still_returns_the_data(cache, monkeypatch):
    monkeypatch.setattr(mnist1d, "_generator_version", lambda: "9.9")
    monkeypatch.setattr(mnist1d, "_generate", fake_generator)
    (cache / "datasets").write_text("a file where the folder should be")
    with pytest.warns(UserWarning, match="could not cache MNIST-1D"):
        assert nk.datasets.load("mnist1d", n_samples=20)[0].shape == (16, 40)


def test_mnist1d_without_its_package_names_the_extra(cache, monkeypatch):
    real_version = metadata.version

    def version(name):
        if name == "mnist1d":
            raise metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(metadata, "version", version)
    with pytest.raises(ImportError, match=r"mnist1d package, which is not installed: pip install 'nkernels\[mnist1d\]'"):
        nk.datasets.load("mnist1d")
    monkeypatch.setattr(metadata, "version", real_version)
    for module in ("mnist1d", "mnist1d.data"):  # installed, but its import fails
        monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr(mnist1d, "_generator_version", lambda: "9.9")
    with pytest.raises(ImportError, match=r"failed to import .*nkernels\[mnist1d\]"):
        nk.datasets.load("mnist1d", n_samples=20)


@pytest.mark.parametrize("options, message", [
    ({"n_samples": 105}, "multiple of 10"), ({"n_samples": 0}, "n_samples must be an integer of at least 10"),
    ({"n_samples": 100.0}, "n_samples must be an integer"), ({"seed": -1}, "seed must be an integer of at least 0"),
])
def test_mnist1d_refuses_bad_arguments(cache, options, message):
    with pytest.raises(ValueError, match=message):
        nk.datasets.load("mnist1d", **options)


# --- digits ---------------------------------------------------------------------------------------------------------

def test_the_digits_split_is_made_once_then_read_from_the_cache(cache, monkeypatch):
    """A new process's first step spent most of its time importing scikit-learn for the digits: the split
    is now cached per scikit-learn version and seed, and read back identical (images too)."""
    import nkernels.datasets as datasets

    fresh = datasets.load_digits(seed=3)
    (cached,) = (cache / "datasets").glob("digits-*-seed3.npz")
    assert metadata.version("scikit-learn") in cached.name
    monkeypatch.setattr(datasets, "_split_digits", lambda seed: pytest.fail("made again instead of read"))
    for ours, again in zip(fresh, datasets.load_digits(seed=3)):
        np.testing.assert_array_equal(ours, again)
        assert ours.dtype == again.dtype
    images = datasets.load_digits(flat=False, seed=3)
    assert images[0].shape == (1257, 1, 8, 8) and images[0].flags.c_contiguous
    np.testing.assert_array_equal(images[0].reshape(1257, 64), fresh[0])
    monkeypatch.undo()
    monkeypatch.setenv("NKERNELS_CACHE_DIR", str(cache))
    cached.write_bytes(b"damaged")  # made again, and the same
    for ours, again in zip(fresh, datasets.load_digits(seed=3)):
        np.testing.assert_array_equal(ours, again)
    datasets.load_digits(seed=None)  # a random split each time: never cached
    assert len(list((cache / "datasets").glob("digits-*"))) == 1
