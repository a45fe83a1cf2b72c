import sys

from pybpf.entry import main

sys.exit(main())
