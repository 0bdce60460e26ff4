import sys

from backfill_cli import main

sys.exit(main())
