"""Table 3: SRI-G ablations on ShapeStacks. Rows: a (no scene variable), b (no order alignment, no
crossOrderKL), c (no crossOrderKL), d (full, default).

Examples:
    python experiments/table3_ablation.py with smoke                 # tiny CPU run on synthetic blocks
    python experiments/table3_ablation.py with row=<row> seed=2      # the paper's hyper-parameters
    python experiments/table3_ablation.py print_config with <row>    # show every hyper-parameter
Add `-m host:port:db` (or set SRI_MONGO_URL) to log to MongoDB instead of runs/.
"""
from _common import make_experiment, run

ex = make_experiment(3)

if __name__ == "__main__":
    run(ex)
