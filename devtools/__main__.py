"""`./fit` commands. Run `./fit help`."""

from devtools.cli import main

raise SystemExit(main())
