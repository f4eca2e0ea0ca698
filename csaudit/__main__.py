import sys

from csaudit.cli import main

sys.exit(main())
