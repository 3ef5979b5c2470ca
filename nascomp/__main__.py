import sys

from nascomp.cli import main

sys.exit(main())
