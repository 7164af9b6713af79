"""What every page shares: a session acting as the signed-in user and the time format (both from core.jobs.panel,
which domain pages use too), and errors shown as one message."""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable

import streamlit as st

from apps.auth import SignedIn, current_user
from core.errors import FinmedError
from core.jobs.panel import acting, fmt_time  # noqa: F401  (the pages' session and time format, shared with jobs)
from core.settings import get_settings


def page(render: Callable[[SignedIn], None]) -> Callable[[], None]:
    """Wrap a page's render(user): sign-in required; project errors become one error box, others one line.

    A bug still never shows a traceback to the user (it goes to the server's stderr) unless FINMED_DEBUG is set.
    """

    @functools.wraps(render)
    def wrapper() -> None:
        signed = current_user()
        if signed is None:
            st.error("Sign in first.")
            return
        try:
            render(signed)
        except FinmedError as exc:
            st.error(str(exc))
        except Exception as exc:
            if get_settings().debug:
                raise
            traceback.print_exc(file=sys.stderr)
            st.error(f"Something went wrong ({type(exc).__name__}: {exc}). The server log has the details.")

    return wrapper
