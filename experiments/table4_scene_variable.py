"""Table 4: scene-variable ablation on ShapeStacks. Rows: gen, gen_scene, genv2, genv2_scene, sri (default, SRI-MoG).

Examples:
    python experiments/table4_scene_variable.py with smoke                 # tiny CPU run on synthetic blocks
    python experiments/table4_scene_variable.py with row=<row> seed=2      # the paper's hyper-parameters
    python experiments/table4_scene_variable.py print_config with <row>    # show every hyper-parameter
Add `-m host:port:db` (or set SRI_MONGO_URL) to log to MongoDB instead of runs/.
"""
from _common import make_experiment, run

ex = make_experiment(4)

if __name__ == "__main__":
    run(ex)
