"""
Packaging for wcs-twisted: the wcs_twisted package, the twistd drop-in (twisted/plugins, no
__init__.py there) and the module plugins (plugins/, installed as the package wcs_plugins).
"""

from setuptools import find_packages, setup

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
    install_requires=[
        "twisted[tls]>=24.11.0",
        "autobahn>=24.4.2",
        "aiortc>=1.9.0",
        "av>=12.0.0",
        "zope.interface>=7.0",
        "treq>=24.9.1",
        "klein>=24.8.0",
        "prometheus_client>=0.20.0",
    ],
    extras_require={
        "test": [
            "playwright>=1.45",
            "numpy>=1.26",
            "websockets>=13",
        ],
    },
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3.11",
        "Topic :: Communications :: Internet Phone",
    ],
)
