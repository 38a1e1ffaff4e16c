"""Fashion-MNIST (Xiao et al.): 28 x 28 clothing images, 10 classes.

Data, first found wins (never downloads):
1. ``--data_path``: an ``.npz`` or a directory with the four IDX files;
2. Debian's ``dataset-fashion-mnist`` package (``/usr/share/datasets/fashion-mnist``,
   installed by ``make venv`` where apt is usable);
3. Keras' cache ``~/.keras/datasets/fashion-mnist``, or a prepared TFDS copy.
Otherwise a ``DataError`` says how to get it.

The paper has no Fashion-MNIST experiment; the MNIST setup is used with the
same label indices: label flip 1 (Trouser) -> 7 (Sneaker), backdoor target 2
(Pullover). Normalisation mean 0.2860, std 0.3530.
"""

from __future__ import annotations


from tff_residual.tasks import images
from tff_residual.tasks.base import DataError, DataSettings, TaskData
from tff_residual.tasks.image_files import find_idx_files, load_idx_directory, load_image_path

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot")
SPEC = images.ImageSpec(
    input_shape=(28, 28), image_shape=(28, 28, 1), mean=(0.2860,), std=(0.3530,),
    class_names=CLASS_NAMES, flip_source=1, flip_target=7, backdoor_target=2)
INSTALL_HINT = ("install Debian's dataset-fashion-mnist (`sudo apt-get install "
                "dataset-fashion-mnist`; `make venv` does it when run as root), or pass "
                "--data_path to an .npz or a directory with the four IDX files")


def available() -> bool:
  """Whether Fashion-MNIST can be loaded without --data_path."""
  return any(find_idx_files(d) is not None
             for d in (DEBIAN_DIR, images.keras_cache("fashion-mnist")))


def load(settings: DataSettings) -> TaskData:
  if settings.data_path:
    train, test = load_image_path(settings.data_path, SPEC.input_shape)
    return images.image_data(train, test, SPEC, f"fmnist from {settings.data_path}")
  for directory, source in ((DEBIAN_DIR, "fmnist (Debian dataset-fashion-mnist)"),
                            (images.keras_cache("fashion-mnist"), "fmnist (Keras cache)")):
    if find_idx_files(directory) is not None:
      return images.image_data(*load_idx_directory(directory), SPEC, source)
  tfds_data = images.load_tfds("fashion_mnist")
  if tfds_data is not None:
    return images.image_data(*tfds_data, SPEC, "fmnist (TFDS)")
  raise DataError(f"Fashion-MNIST not found in {DEBIAN_DIR} or the Keras/TFDS caches: "
                  f"{INSTALL_HINT}.")


FAMILY = images.family("fmnist", SPEC, load, "Fashion-MNIST (Debian's dataset-fashion-mnist, "
                       "--data_path, or Keras/TFDS cache)")
