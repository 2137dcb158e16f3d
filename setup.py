"""Build configuration that pyproject.toml cannot say: the BPF C programs live in the
top-level ``probes/`` folder of the checkout and are shipped inside the wheel as the data
package ``keck_tui.probes.bpf`` (``package_dir`` maps that package onto ``probes/``).

keck_tui/probes/loader.py looks for them in both places: ``keck_tui/probes/bpf/`` in an
installed wheel, ``probes/`` in a checkout (editable installs included).
Everything else about the project is in pyproject.toml.
"""
from setuptools import find_namespace_packages, setup

PROBES_PACKAGE = "keck_tui.probes.bpf"

setup(
    packages=find_namespace_packages(include=["keck_tui*"]) + [PROBES_PACKAGE],
    package_dir={PROBES_PACKAGE: "probes"},
    package_data={"keck_tui": ["ui/*.tcss", "data/*.csv", "data/*.toml", "data/*.md"], PROBES_PACKAGE: ["*.bpf.c"]},
)
