import sys

from csaudit.cli.main import main

sys.exit(main())
