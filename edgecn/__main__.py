import sys

from edgecn.cli import main

sys.exit(main())
