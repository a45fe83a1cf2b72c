import sys

from xdptcp.cli import main

sys.exit(main())
