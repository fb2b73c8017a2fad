"""Model hyperparameters and dtypes with the CPU edge-block size both engines must choose
(``gnnff.calculators.memory.cpu_block_edges`` in ASE, ``cpu_block_edges`` in pair_gnnff.cpp)."""

BLOCK_CASES = [
    ({"num_scalar": 32, "num_tensor": 8, "mlp_hidden": [64], "l_max": 1}, "float32", 20000),
    ({"num_scalar": 32, "num_tensor": 8, "mlp_hidden": [64], "l_max": 1}, "float64", 10000),
    ({"num_scalar": 64, "num_tensor": 16, "mlp_hidden": [128], "l_max": 1}, "float32", 10000),
    # l_max 2: the tensor features [E, 8, 9] are the widest row (72 numbers)
    ({"num_scalar": 32, "num_tensor": 8, "mlp_hidden": [64], "l_max": 2}, "float64", 8500),
    ({"family": "plugin-family", "mlp_hidden": "wide"}, "float32", 20000),  # unknown keys
    ({"mlp_hidden": 128, "num_scalar": True}, "float32", 10000),  # an int width, a bool
    ({"mlp_hidden": [128.0]}, "float32", 10000),  # integral float
    ({"mlp_hidden": [], "num_scalar": 96.5}, "float32", 20000),  # empty list, fractional
    ({"mlp_hidden": [100000]}, "float64", 1000),  # never below 1000 edges
]
