"""The service itself: its own health and info, and leases among worker processes."""
