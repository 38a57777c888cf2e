"""HTTP glue shared by the pages and the API: streamed uploads in, package downloads out."""
