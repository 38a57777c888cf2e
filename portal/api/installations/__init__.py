"""API for installations: plans and installs, lifecycle, runtime health."""
