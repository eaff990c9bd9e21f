"""``python -m ebm_studio`` runs the same entry point as the ``ebm-studio`` command."""

from ebm_studio.cli import main

raise SystemExit(main())
