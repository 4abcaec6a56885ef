#!/bin/sh
# Container entrypoint: run one experiment script, or pass a command through.
#   sri-entrypoint table2_main with row=sri_mog dataset=clevr6 seed=0   -> python experiments/table2_main.py ...
#   sri-entrypoint experiments/table2_main.py print_config          -> python experiments/table2_main.py ...
#   sri-entrypoint torchrun --nproc_per_node=4 experiments/table2_main.py with ...
#   sri-entrypoint sri --help | python ... | bash
set -eu

usage() {
    echo "usage: <experiment name or path> [sacred arguments...]   (e.g. table2_main with smoke)"
    echo "   or: torchrun|python|sri|bash|sh [arguments...]"
    echo "experiments:"
    for f in experiments/*.py; do
        name="$(basename "$f" .py)"
        case "$name" in _*|'*') continue ;; esac
        echo "  $name"
    done
    echo "Runs go to MongoDB when SRI_MONGO_URL is set, otherwise to the file store /runs."
}

if [ "$#" -eq 0 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
    usage
    exit 0
fi

first="$1"
shift
case "$first" in
    torchrun|python|python3|sri|bash|sh|pytest|make)
        exec "$first" "$@" ;;
    *.py)
        script="$first" ;;
    *)
        script="experiments/$first.py" ;;
esac
if [ ! -f "$script" ]; then
    echo "error: no experiment script '$script' (run the container with --help for the list)" >&2
    exit 2
fi
exec python "$script" "$@"
