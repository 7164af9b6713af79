"""Imports every module that defines tables, so Alembic (env.py, autogenerate) sees the whole schema."""

import core.db.models  # noqa: F401
import core.review.models  # noqa: F401
import core.serving.keys  # noqa: F401
import domains.finance.models  # noqa: F401
