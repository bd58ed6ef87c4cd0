import sys

from torchmanual.cli import main

sys.exit(main())
