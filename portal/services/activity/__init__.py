"""Activity: the event log as admins read it."""
