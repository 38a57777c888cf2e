"""The marketplace and the module pages."""
