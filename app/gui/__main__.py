import sys

from app.gui.run import main

sys.exit(main())
