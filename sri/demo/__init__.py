"""The demo (`make demo`, `python -m sri.demo`: `sri.demo.cli`) and the recipe of its starting
checkpoints (`make demo-checkpoints`: `sri.demo.recipe`, which imports nothing back from the demo)."""
