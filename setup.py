"""Package list for setuptools; everything else is in pyproject.toml.

The presets stay in the top-level ``configs/`` folder and install as the package
``ctqc.presets`` (``[tool.setuptools.package-dir]`` maps it), so ``--config paper``
works after a regular install. pyproject.toml cannot combine automatic package
discovery with that mapped package, so the two are listed here.
"""

from setuptools import find_namespace_packages, setup

setup(packages=find_namespace_packages(include=["ctqc*", "gan*", "classify*", "reports*"]) + ["ctqc.presets"])
