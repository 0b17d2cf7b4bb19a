"""The quota side's named "not found" outcomes (serverkit.errors tree: 404 through the one mapping). A KeyError is
never one of them: raised by a bug while a site's state is loaded, it stays a bug (logged with its traceback by
the loop, a 500 at the API) instead of passing for "this site is not under quota control"."""

from __future__ import annotations

from serverkit.errors import NotFound


class NotUnderQuota(NotFound):
    """The site has no limits set: nothing of it is under quota control."""

    def __init__(self, site: str) -> None:
        super().__init__("site under quota control", site)
        self.args = (f"site {site!r} is not under quota control (no site limits set)",)
        self.site = site
