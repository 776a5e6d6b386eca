"""Print the requirements of pyproject.toml's [project] (plus the named extras), one a line.

The worker image installs these with ``pip install -c requirements.lock -r -`` in a layer of
its own, before the project source is copied, so a change to the source does not reinstall
the dependencies (docker/Dockerfile.worker). ``scripts/k8s/worker_image.sh`` builds its
wheelhouse from the same list. Standard library only: it runs in the bare base image.

Usage: python pyproject_requirements.py PYPROJECT [EXTRA[,EXTRA...]]
"""

from __future__ import annotations

import sys
import tomllib


def requirements(pyproject: str, extras: str) -> list[str]:
    """The dependencies of ``pyproject`` followed by those of each extra in ``extras``.

    Raises:
        SystemExit: An extra that pyproject.toml does not define (named, with the known ones).
    """
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    optional = project.get("optional-dependencies", {})
    out = list(project.get("dependencies", []))
    for extra in filter(None, (e.strip() for e in extras.split(","))):
        if extra not in optional:
            raise SystemExit(f"error: no extra {extra!r} in {pyproject} "
                             f"(known: {', '.join(sorted(optional))})")
        out.extend(optional[extra])
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        raise SystemExit(__doc__.strip().splitlines()[-1])
    sys.stdout.write("".join(f"{r}\n" for r in requirements(
        sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "")))
