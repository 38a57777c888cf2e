"""The catalogue: which releases a viewer may see, search, the marketplace cards and their cache."""
