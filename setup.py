"""tff-residual: attack-resistant aggregation for TensorFlow Federated.

TensorFlow Federated 0.87.0 cannot be installed by pip's resolver (it pins
jax 0.4.14, which the index no longer serves): use `make venv` or
`scripts/install.sh`, which install TFF with --no-deps after its pinned
requirements (requirements/tff.txt). Hence TFF is not listed below.
"""

import re

from setuptools import find_packages, setup


def version() -> str:
  """The one statement of the version: ``tff_residual.__version__``."""
  with open("tff_residual/__init__.py", encoding="utf-8") as f:
    return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


setup(
    name="tff-residual",
    version=version(),
    description="Residual-based reweighting and robust baselines as TFF aggregation factories",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["tff_residual", "tff_residual.*"]),
    entry_points={"console_scripts": ["tff-residual-run = tff_residual.entry:main"]},
    python_requires=">=3.9,<3.12",
    install_requires=["tensorflow>=2.14,<2.15", "numpy>=1.23,<2"],
    license="Apache-2.0",
    license_files=["LICENSE"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
