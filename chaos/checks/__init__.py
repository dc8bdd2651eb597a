"""The drill's invariant checkers: pure functions from what was recorded to a Verdict."""
