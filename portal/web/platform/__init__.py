"""The service's own pages: /health, /info and the API docs."""
