"""Table 1: SRI-SA* vs SRI on ShapeStacks. Rows: sri_sa (SRI-SA*), sri (default, SRI-MoG).

Examples:
    python experiments/table1_slot_attention.py with smoke                 # tiny CPU run on synthetic blocks
    python experiments/table1_slot_attention.py with row=<row> seed=2      # the paper's hyper-parameters
    python experiments/table1_slot_attention.py print_config with <row>    # show every hyper-parameter
Add `-m host:port:db` (or set SRI_MONGO_URL) to log to MongoDB instead of runs/.
"""
from _common import make_experiment, run

ex = make_experiment(1)

if __name__ == "__main__":
    run(ex)
