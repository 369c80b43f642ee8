import sys

from edgecn.runner.cli import main

sys.exit(main())
