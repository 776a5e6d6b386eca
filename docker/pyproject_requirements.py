"""Print the requirements of pyproject.toml's [project] (plus the named extras), one a line.

The images install these with ``pip install -c requirements.lock -r -`` in a layer of their
own, before the project source is copied, so a change to the source does not reinstall the
dependencies (docker/Dockerfile.worker). ``scripts/k8s/worker_image.sh`` builds its
wheelhouses from the same lists. Standard library only: it runs in the bare base image.

The coordinator image adds a second layer on top of the worker's: ``--extras-only`` prints
the extras' requirements without the project's own (already installed below), and
``--without NAME`` leaves one out (the GGUF package, which gets a build stage of its own).

Usage: python pyproject_requirements.py [--extras-only] [--without NAME] PYPROJECT [EXTRA[,EXTRA...]]
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib


def _name(requirement: str) -> str:
    """The normalised project name of a requirement line (PEP 503)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    return re.sub(r"[-_.]+", "-", match.group(1)).lower() if match else requirement


def requirements(pyproject: str, extras: str, *, extras_only: bool = False,
                 without: tuple[str, ...] = ()) -> list[str]:
    """The dependencies of ``pyproject`` followed by those of each extra in ``extras``.

    Raises:
        SystemExit: An extra that pyproject.toml does not define (named, with the known ones).
    """
    with open(pyproject, "rb") as fh:
        project = tomllib.load(fh)["project"]
    optional = project.get("optional-dependencies", {})
    out = [] if extras_only else list(project.get("dependencies", []))
    for extra in filter(None, (e.strip() for e in extras.split(","))):
        if extra not in optional:
            raise SystemExit(f"error: no extra {extra!r} in {pyproject} "
                             f"(known: {', '.join(sorted(optional))})")
        out.extend(optional[extra])
    skip = {_name(name) for name in without}
    return [r for r in out if _name(r) not in skip]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(usage=__doc__.strip().splitlines()[-1].removeprefix(
        "Usage: "))
    parser.add_argument("--extras-only", action="store_true")
    parser.add_argument("--without", action="append", default=[])
    parser.add_argument("pyproject")
    parser.add_argument("extras", nargs="?", default="")
    args = parser.parse_args()
    sys.stdout.write("".join(f"{r}\n" for r in requirements(
        args.pyproject, args.extras, extras_only=args.extras_only,
        without=tuple(args.without))))
