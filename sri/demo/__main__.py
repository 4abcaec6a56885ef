"""`python -m sri.demo`: see `sri.demo.cli`."""
import sys

from sri.demo.cli import main

sys.exit(main())
