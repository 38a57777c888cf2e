"""Pages for signing in and out and for personal API tokens."""
