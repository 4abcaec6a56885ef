"""`python -m sri.bench ...`: see `sri.bench`."""
import sys

from sri.bench import main

sys.exit(main())
