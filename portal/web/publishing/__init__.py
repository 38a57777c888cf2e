"""The publish page: uploads, live validation, my releases."""
