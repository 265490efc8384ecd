"""User-facing errors: the CLI turns these into a one-line message and exit code 1."""


class PlannerError(Exception):
    """A problem with the user's input or request (bad file, unknown name, infeasible SLO)."""


def one_line(text: object) -> str:
    """A message on one line: every line break `str.splitlines` knows (form feeds, \\x1c-\\x1e,
    \\x85, \\u2028 as well as \\r and \\n) and the whitespace around it become "; ", tabs
    spaces, and other control characters (a binary header or cell quoted back) are shown
    escaped, so that no terminal splits or restyles it."""
    parts = [part.strip() for part in str(text).strip().splitlines()]
    joined = "; ".join(part for part in parts if part).replace("\t", " ")
    return "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in joined
    )
