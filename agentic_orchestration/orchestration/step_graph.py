"""Steps that depend on steps: the plan as a graph (pure, stdlib only).

A step may name the steps it needs (``depends_on``, a list of step ids). When it names none
(``None``), it depends on the step written before it, so every workflow and plan written
before ``depends_on`` existed is the same chain it always was; ``[]`` means "needs nothing"
(a second root). The catalog validator (``catalogs.models``), the planner's checks
(``planning.plan_validation``) and both backends read the graph through this module, so a
plan means the same thing everywhere.

Rules, checked by :func:`check_dependencies` with one message naming the step:
no unknown ids, no step depending on itself, no cycle. Forward references are fine as long
as there is no cycle; backends run steps in :func:`topological_order`, which keeps the
written order wherever the graph allows it (a chain runs exactly as written).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "GraphError",
    "StepGraph",
    "check_dependencies",
    "dependencies_of",
    "topological_order",
]


class GraphError(ValueError):
    """The dependencies cannot be run: an unknown id, a self-dependency or a cycle.

    A ``ValueError`` so that pydantic validators report it as a field error.
    """

    def __init__(self, message: str, *, step_id: str) -> None:
        super().__init__(message)
        self.step_id = step_id


class _HasDeps(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def depends_on(self) -> list[str] | None: ...


def dependencies_of(steps: Iterable[_HasDeps]) -> dict[str, tuple[str, ...]]:
    """step id -> the ids it waits for, in written order (``None`` = the previous step)."""
    deps: dict[str, tuple[str, ...]] = {}
    previous: str | None = None
    for step in steps:
        if step.depends_on is None:
            deps[step.id] = (previous,) if previous is not None else ()
        else:
            deps[step.id] = tuple(dict.fromkeys(step.depends_on))
        previous = step.id
    return deps


def check_dependencies(deps: Mapping[str, Sequence[str]]) -> None:
    """Raise ``GraphError`` naming the first step whose dependencies cannot run."""
    for step_id, needs in deps.items():
        for need in needs:
            if need == step_id:
                raise GraphError(f"step {step_id!r} depends on itself", step_id=step_id)
            if need not in deps:
                raise GraphError(f"step {step_id!r} depends on unknown step {need!r} "
                                 f"(steps: {', '.join(deps)})", step_id=step_id)
    cycle = _find_cycle(deps)
    if cycle:
        raise GraphError(f"step {cycle[0]!r} is in a dependency cycle: "
                         + " -> ".join([*cycle, cycle[0]]), step_id=cycle[0])


def _find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """One cycle (step ids in dependency order), or [] when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in deps:
        if state.get(root):
            continue
        path: list[str] = []
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:
            node, position = stack.pop()
            if position == 0:
                state[node] = 1
                path.append(node)
            needs = deps.get(node, ())
            if position < len(needs):
                stack.append((node, position + 1))
                nxt = needs[position]
                if state.get(nxt) == 1:
                    return path[path.index(nxt):]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return []


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Step ids so that every step comes after what it depends on; ties keep written order.

    ``deps`` must have passed :func:`check_dependencies`.
    """
    written = list(deps)
    done: set[str] = set()
    order: list[str] = []
    while len(order) < len(written):
        nxt = next(s for s in written if s not in done and all(d in done for d in deps[s]))
        order.append(nxt)
        done.add(nxt)
    return order


@dataclass
class StepGraph:
    """A checked plan graph and the questions a scheduler asks of it.

    Attributes:
        ids: Step ids in written order.
        deps: step id -> the ids it waits for.
    """

    ids: list[str]
    deps: dict[str, tuple[str, ...]]
    dependents: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        check_dependencies(self.deps)
        self.dependents = {step_id: [] for step_id in self.ids}
        for step_id in self.ids:
            for need in self.deps[step_id]:
                self.dependents[need].append(step_id)

    @classmethod
    def from_steps(cls, steps: Iterable[_HasDeps]) -> StepGraph:
        listed = list(steps)
        return cls([s.id for s in listed], dependencies_of(listed))

    @property
    def is_chain(self) -> bool:
        """Each step waits exactly for the one written before it: the classic sequence."""
        return all(self.deps[s] == ((self.ids[i - 1],) if i else ())
                   for i, s in enumerate(self.ids))

    def order(self) -> list[str]:
        return topological_order(self.deps)

    def ready(self, done: set[str], started: set[str]) -> list[str]:
        """Steps not started whose dependencies are all done, in written order."""
        return [s for s in self.ids
                if s not in started and s not in done and all(d in done for d in self.deps[s])]

    def downstream(self, step_id: str) -> list[str]:
        """Every step that depends on ``step_id``, directly or not, in written order."""
        seen: set[str] = set()
        todo = [step_id]
        while todo:
            for child in self.dependents[todo.pop()]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return [s for s in self.ids if s in seen]

    def critical_path(self, cost: Mapping[str, float] | None = None) -> float:
        """Length of the longest dependency chain (each step costs 1 unless ``cost`` says)."""
        finish: dict[str, float] = {}
        for step_id in self.order():
            own = 1.0 if cost is None else cost.get(step_id, 0.0)
            finish[step_id] = own + max((finish[d] for d in self.deps[step_id]), default=0.0)
        return max(finish.values(), default=0.0)

    def widest_level(self) -> int:
        """Most steps at one depth (depth: the longest chain of dependencies before a step).

        A cheap bound on how many steps can run at once, used to size what is prepared
        ahead (warm spares): 1 for a chain, 2 for a diamond.
        """
        depth: dict[str, int] = {}
        for step_id in self.order():
            depth[step_id] = 1 + max((depth[d] for d in self.deps[step_id]), default=0)
        levels: dict[int, int] = {}
        for level in depth.values():
            levels[level] = levels.get(level, 0) + 1
        return max(levels.values(), default=0)
