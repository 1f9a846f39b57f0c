import sys

from warehouse_devstack.stack import main

sys.exit(main())
