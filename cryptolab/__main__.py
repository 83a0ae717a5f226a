"""``python -m cryptolab`` runs the command line."""

from cryptolab.cli import main

raise SystemExit(main())
