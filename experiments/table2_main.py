"""Table 2: main results. Rows: emorl, gen, sri_emorl, genv2_g, sri_g, genv2_mog, sri_mog (default);
datasets clevr6, objects_room, shapestacks (default).

Examples:
    python experiments/table2_main.py with smoke                 # tiny CPU run on synthetic blocks
    python experiments/table2_main.py with row=<row> seed=2      # the paper's hyper-parameters
    python experiments/table2_main.py print_config with <row>    # show every hyper-parameter
Add `-m host:port:db` (or set SRI_MONGO_URL) to log to MongoDB instead of runs/.
"""
from _common import make_experiment, run

ex = make_experiment(2)

if __name__ == "__main__":
    run(ex)
