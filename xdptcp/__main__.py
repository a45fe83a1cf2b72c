import sys

from xdptcp.entry import main

sys.exit(main())
