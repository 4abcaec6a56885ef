"""Moved: the demo checkpoints' recipe is `sri.demo.recipe` (`make demo-checkpoints`)."""
raise SystemExit("sri.demo_checkpoints moved to sri.demo.recipe: run `make demo-checkpoints` "
                 "(python -m sri.demo --make-checkpoints)")
