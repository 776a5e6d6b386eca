"""Free text -> an FTS5 query: the words that carry meaning, each quoted, joined by OR.

Why not pass the text to ``MATCH`` as it is: FTS5 has its own syntax (``AND``, ``NOT``,
``NEAR``, ``*``, ``"``, ``:`` column filters, parentheses), so a goal such as
``Compare C++ vs. Rust: which is "faster"?`` would be a syntax error or a different query.
Quoting every word makes each one a plain term. OR (not FTS5's default AND) because a goal
is a description, not a keyword list: a past run sharing most of its words is relevant
even if one word differs, and BM25 ranks the runs sharing more (and rarer) words first.

Words that appear in almost every goal ("write", "explain", "the") are dropped: BM25 would
weigh them little, but a run matching only them would still count as a hit, and the planner
should not be shown a past run whose only link to the goal is the word "write".
"""

from __future__ import annotations

import re

__all__ = ["STOPWORDS", "fts_query", "query_terms"]

#: English function words plus the instruction verbs every goal starts with.
STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself just
me more most my no nor not now of off on once only or other our ours out over own same she
should so some such than that the their theirs them then there these they this those through
to too under until up very was we were what when where which while who whom why will with
would you your yours yourself please give tell make create write explain describe show
short brief simple using use one two three way ways thing things get
""".split())

#: Upper bound on terms: a pasted page as a query would otherwise be a huge OR.
MAX_TERMS = 32
_WORD = re.compile(r"\w+", re.UNICODE)


def query_terms(text: str) -> list[str]:
    """The distinct meaningful words of ``text``, lower-cased, in first-seen order."""
    terms: list[str] = []
    for word in _WORD.findall(text.lower()):
        word = word.strip("_")
        if len(word) < 2 or word in STOPWORDS or word in terms:
            continue
        terms.append(word)
        if len(terms) == MAX_TERMS:
            break
    return terms


def fts_query(terms: list[str]) -> str:
    """``"a" OR "b"``; each term is ``\\w+`` only, so quoting is all the escaping needed."""
    return " OR ".join(f'"{term}"' for term in terms)
