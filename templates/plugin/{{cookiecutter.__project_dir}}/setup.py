# All metadata lives in setup.cfg; this file lets older tools run `pip install -e .`.
from setuptools import setup

setup()
