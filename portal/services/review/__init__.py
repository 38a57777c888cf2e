"""Review: the approval queue, its check report, and decisions on releases."""
