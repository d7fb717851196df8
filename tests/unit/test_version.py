import os
import tomllib

from nsbox.runtime import __version__


def test_one_version():
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        assert tomllib.load(f)["project"]["version"] == __version__
