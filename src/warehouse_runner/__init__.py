"""The warehouse-runner daemon and its one-shot commands."""
