import sys

from warehouse_web.cli import main

sys.exit(main())
