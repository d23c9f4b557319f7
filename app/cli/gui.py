"""`infinibook gui`: open the desktop window."""

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("gui", help="open the Infinibook window",
                                 description="Open the Infinibook desktop window.")
    parser.add_argument("files", nargs="*", metavar="BOOK",
                        help="EPUB, PDF, text or Markdown files to add to the library and open")
    parser.add_argument("--data-dir", default=None,
                        help="library directory for this session (default: the one in Settings, "
                             "$INFINIBOOK_DATA_DIR or the user data dir)")
    parser.add_argument("--settings", default=None, metavar="FILE",
                        help="keep settings in this INI file instead of the system store "
                             "(default: $INFINIBOOK_SETTINGS if set)")
    parser.set_defaults(handler=run_gui)


def run_gui(args: argparse.Namespace) -> int:
    from app.gui.run import run

    return run(data_dir=args.data_dir, settings_path=args.settings, files=args.files)
