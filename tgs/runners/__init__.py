"""Run directories and the executors that fill them."""
