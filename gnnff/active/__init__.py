"""Active learning for stability: explore (MD with the stability monitor) -> select failure
frames -> label with the reference -> retrain -> explore again (``gnnff stabilize``)."""
