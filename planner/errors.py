"""User-facing errors: the CLI turns these into a one-line message and exit code 1."""


class PlannerError(Exception):
    """A problem with the user's input or request (bad file, unknown name, infeasible SLO)."""
