"""``main.py --kb-search TEXT``: the past runs whose outputs best match TEXT, best first.

Prints, per run, its id, the matching output (step or final answer), the provider, the past
goal and the matching part of the text with the query's words in ``[brackets]``: enough to
decide whether to open the session (``--session RUN_ID``) or reuse the answer. Read-only:
searching never creates the knowledge base.
"""

from __future__ import annotations

import sys

from agentic_orchestration.errors import EXIT_OK, ConfigError

__all__ = ["DEFAULT_LIMIT", "kb_search"]

DEFAULT_LIMIT = 10


def kb_search(text: str, *, limit: int = DEFAULT_LIMIT) -> int:
    """Search and print; exit code 0 (also when nothing matches).

    Raises:
        ConfigError: The text has no word to search for, or the file is not a knowledge
            base (exit code 2).
    """
    from agentic_orchestration.knowledge import KnowledgeBase
    from agentic_orchestration.knowledge._query import query_terms
    from agentic_orchestration.redaction import redact_text

    if not query_terms(text):
        raise ConfigError(f"--kb-search {text!r}: give words to search for (common words "
                          "such as 'the' or 'write' are ignored)")
    kb = KnowledgeBase()
    if not kb.exists():
        print(f"The knowledge base is empty: no run has been indexed yet ({kb.path}).")
        return EXIT_OK
    hits = kb.search(text, k=limit)
    if not hits:
        runs, _ = kb.count()
        print(f"No past output matches {text!r} ({runs} run(s) indexed in {kb.path}).")
        return EXIT_OK
    lines = [f"{len(hits)} past run(s) matching {text!r}, best first:"]
    for rank, hit in enumerate(hits, start=1):
        where = "final answer" if hit.kind == "final" else f"step {hit.step_id}"
        provider = f" by {hit.provider}" if hit.provider else ""
        lines += [
            f"{rank}. run {hit.run_id}  ({where}{provider}; score {hit.score:.3g}; "
            f"{hit.created_at[:19]})",
            f"   goal: {hit.goal}",
            f"   {hit.snippet}",
        ]
    sys.stdout.write(redact_text("\n".join(lines)) + "\n")
    return EXIT_OK
