"""Health: probing installations' endpoints and recording what they report."""
