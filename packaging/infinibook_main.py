"""Entry point of the bundled app: the window by default, the command line with arguments.

    Infinibook                 open the window
    Infinibook books list      any `infinibook` subcommand
"""

import sys

if __name__ == "__main__":
    from app.cli import main

    sys.exit(main(sys.argv[1:] or ["gui"]))
