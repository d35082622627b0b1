#!/usr/bin/env python3
"""Exit 0 when every requirement in the given file is installed at a matching version."""
import sys

from importlib.metadata import PackageNotFoundError, version

try:
    from packaging.requirements import Requirement
except ImportError:  # packaging absent: let pip decide
    sys.exit(1)

for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if not line or line.startswith("-"):
        continue
    req = Requirement(line)
    try:
        if not req.specifier.contains(version(req.name), prereleases=True):
            sys.exit(1)
    except PackageNotFoundError:
        sys.exit(1)
