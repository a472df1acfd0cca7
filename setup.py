"""
Packaging for wcs-twisted: the wcs_twisted package, the twistd drop-in (twisted/plugins, no
__init__.py there) and the module plugins (plugins/, installed as the package wcs_plugins).
"""

import os

from setuptools import find_packages, setup
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))


class PluginPath:
    """
    Wraps setuptools' editable strategy and adds a .pth line with the project root.

    twistd finds C{twisted/plugins/wcs_plugin.py} only in a sys.path entry that holds it
    (L{twisted.plugin.pluginPackagePaths} scans sys.path); the default editable install is an
    import hook that adds no entry, which left C{twistd wcs} unknown outside the checkout.
    """

    def __init__(self, strategy) -> None:
        self.strategy = strategy

    def __call__(self, wheel, *args, **kwargs) -> None:
        # Arguments passed through as they come: only the wheel is ours to use.
        self.strategy(wheel, *args, **kwargs)
        wheel.writestr("__editable__.wcs_twisted.twistd_plugins.pth", f"{HERE}\n".encode())

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info):
        return self.strategy.__exit__(*exc_info)


class EditableWheel(editable_wheel):
    """
    C{pip install -e .} in any editable mode: also puts the twistd drop-in on sys.path.
    """

    def _select_strategy(self, *args, **kwargs):
        # A private setuptools hook (checked against 65-80): if it is renamed, the install
        # still works and tests/test_tap.py's `twistd wcs --help` from another folder fails.
        return PluginPath(super()._select_strategy(*args, **kwargs))


setup(
    name="wcs-twisted",
    version="0.1.0",
    description="WebRTC <-> SIP gateway and softphone server speaking the Flashphoner WCS protocol",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["wcs_twisted", "wcs_twisted.*"])
    + ["twisted.plugins", "wcs_plugins"],
    package_dir={"wcs_plugins": "plugins"},
    package_data={"wcs_twisted": ["web/*", "web/**/*"]},
    include_package_data=True,
    # Every third-party package imported by wcs_twisted/ or plugins/, by its distribution name
    # (tests/test_tap.py checks the list against the imports).
    install_requires=[
        "twisted[tls]>=24.11.0",
        "autobahn>=24.4.2",
        "aiortc>=1.9.0",
        "aioice>=0.9.0",
        "av>=12.0.0",
        "pylibsrtp>=0.10.0",
        "pyOpenSSL>=24.0.0",
        "cryptography>=42.0.0",
        "zope.interface>=7.0",
        "treq>=24.9.1",
        "klein>=24.8.0",
        "prometheus_client>=0.20.0",
        "txredisapi>=1.4.10",
        "numpy>=1.26",  # G.711 encoding by table, vectorised (wcs_twisted/media/g711.py)
    ],
    extras_require={
        "test": [
            "playwright>=1.45",
            "numpy>=1.26",
            "websockets>=13",
        ],
    },
    cmdclass={"editable_wheel": EditableWheel},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
        "Topic :: Communications :: Internet Phone",
    ],
)
