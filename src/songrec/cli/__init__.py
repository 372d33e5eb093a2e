"""The `songrec` command and its end-of-pipeline summary."""
