"""Why a request is refused: the status, code and detail of the HTTP answer. Raised by the
HTTP layer for what it cannot take and by a gateway for what it will not."""

from __future__ import annotations


class Rejected(Exception):
    """The request cannot be accepted; `status` and `code` go into the HTTP answer."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
