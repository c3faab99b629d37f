import sys

from lpmbench.lab.cli import main

sys.exit(main())
