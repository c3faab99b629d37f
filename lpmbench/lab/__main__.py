import sys

from lpmbench.lab.netns import main

sys.exit(main())
