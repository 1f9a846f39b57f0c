import sys

from warehouse_runner.cli import main

sys.exit(main())
