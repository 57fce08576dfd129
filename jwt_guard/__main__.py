"""``python -m jwt_guard``: the ``jwt-guard`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
